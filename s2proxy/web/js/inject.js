// The inject form: a message is validated (POST /backend/validate-message/) before it may be sent
// into the live conversation (POST /backend/inject/). The daemon refuses injection from outside
// its allowed networks unless the request carries the API token; the form says so plainly.

import { apiToken, injectMessage, setApiToken, validateMessage } from "./api.js";
import { clear, h, jsonPath } from "./util.js";

export class InjectForm {
  constructor(root) {
    this.root = root;
    this.session = null;   // sessionInfo of the selected session
    this.validated = null; // the text that passed validation
    this.form = root.querySelector("form");
    this.text = root.querySelector("#inject-text");
    this.origin = root.querySelector("#inject-origin");
    this.token = root.querySelector("#inject-token");
    this.output = root.querySelector("#inject-output");
    this.sendButton = root.querySelector("#inject-send");
    this.skip = root.querySelector("#inject-skip");
    this.token.value = apiToken();
    this.token.addEventListener("change", () => setApiToken(this.token.value.trim()));
    this.text.addEventListener("input", () => this.changed());
    this.skip.addEventListener("change", () => this.changed());
    root.querySelector("#inject-validate").addEventListener("click", () => this.validate());
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.send();
    });
    this.changed();
  }

  setSession(info) {
    this.session = info;
    const live = !!info && info.state === "open";
    this.root.hidden = !info;
    this.root.querySelector("#inject-live").textContent = live
      ? "Sends into the live conversation as if the chosen side had sent it."
      : "The session is closed: nothing can be injected into it.";
    this.changed();
  }

  changed() {
    const live = this.session && this.session.state === "open";
    const ready = this.skip.checked || this.validated === this.text.value;
    this.sendButton.disabled = !live || !ready || !this.text.value.trim();
  }

  parse() {
    try {
      return { message: JSON.parse(this.text.value) };
    } catch (e) {
      return { error: `Not JSON: ${e.message}` };
    }
  }

  say(kind, ...content) {
    clear(this.output);
    this.output.className = `inject-output ${kind}`;
    this.output.append(...content);
  }

  async validate() {
    const parsed = this.parse();
    if (parsed.error) {
      this.validated = null;
      this.say("error", parsed.error);
      this.changed();
      return;
    }
    this.setToken();
    try {
      const result = await validateMessage(parsed.message);
      const errors = (result && result.errors) || [];
      const valid = result && result.valid !== undefined ? result.valid !== false
        : !errors.some((e) => (e.severity || "error") === "error");
      if (!valid) {
        this.validated = null;
        this.say("error", `Invalid ${result.s2_msg_type || "message"}:`, errorList(errors));
      } else if (errors.length) {
        this.validated = this.text.value;
        this.say("ok", "Valid, with warnings; ready to send:", errorList(errors));
      } else {
        this.validated = this.text.value;
        this.say("ok", `Valid ${result.s2_msg_type || ""}: ready to send.`);
      }
    } catch (e) {
      this.validated = null;
      this.say("error", `Validation failed: ${e.message}`);
    }
    this.changed();
  }

  async send() {
    const parsed = this.parse();
    if (parsed.error || !this.session) return;
    this.setToken();
    const fromRM = this.origin.value === "RM";
    const originId = fromRM ? this.session.rmId : this.session.cemId;
    const destId = fromRM ? this.session.cemId : this.session.rmId;
    try {
      await injectMessage(originId, destId, parsed.message, !this.skip.checked);
      this.say("ok", `Injected as ${this.origin.value}. It appears in the timeline as “injected”.`);
    } catch (e) {
      if (e.status === 403) this.say("error", "Refused (403): this address may not inject. Enter the daemon's API token (--api-token) above.");
      else if (e.status === 409) this.say("error", "Refused (409): the receiving side is not connected.");
      else if (e.status === 400 && e.body && e.body.errors) this.say("error", "Invalid:", errorList(e.body.errors));
      else this.say("error", `Inject failed: ${e.message}`);
    }
  }

  setToken() {
    setApiToken(this.token.value.trim());
  }
}

function errorList(errors) {
  return h("ul", null, errors.map((e) => h("li", null,
    e.severity ? h("span", { class: `badge badge-${e.severity}` }, e.severity) : null, " ",
    h("code", null, e.path || jsonPath(e.loc)), " ", e.rule || e.type ? `${e.rule || e.type}: ` : "",
    e.text || e.msg || JSON.stringify(e))));
}
