"""The web page in a real browser (issue 6): headless Debian chromium, driven by Playwright, against
a real daemon process with an RM and a CEM talking through it.

Screenshots of the main views are written to test-artifacts/ (not committed).
"""

import json
import os
import re

from twisted.trial import unittest

from tests import browser_support as bs

FIXTURE = os.path.join(bs.ROOT, "tests", "fixtures", "transcripts", "types", "frbc_full_ok.jsonl")
RM_ID, CEM_ID = "rm-browser", "cem-browser"
UNKNOWN_SUBJECT = "dead0000-0000-4000-8000-00000000beef"


def conversation():
    """An FRBC conversation up to the first ActuatorStatus, with one schema-invalid message (R-004)
    and one stateful violation (R-040: a ReceptionStatus for a message the RM never sent)."""
    with open(FIXTURE) as f:
        lines = [json.loads(line) for line in f][:18]
    steps = [(line["sender"], line["message"]) for line in lines]
    measurement = dict(steps[8][1], values=[{"commodity_quantity": "ELECTRIC.POWER.3_PHASE_SYMMETRIC",
                                             "value": "lots"}])
    steps[8] = ("RM", measurement)
    steps[9] = ("CEM", dict(steps[9][1], status="INVALID_MESSAGE"))
    steps.append(("CEM", {"message_type": "ReceptionStatus", "subject_message_id": UNKNOWN_SUBJECT,
                          "status": "OK"}))
    return steps


CONTRAST_JS = """() => {
    const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
    const lum = (c) => {
      const [r, g, b] = rgb(c).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const out = {};
    for (const name of ['valid', 'warning', 'error']) {
      const el = document.querySelector('.tl-row .badge-' + name) || document.querySelector('.badge-' + name);
      if (!el) continue;
      const style = getComputedStyle(el);
      const [a, b] = [lum(style.color), lum(style.backgroundColor)].sort((x, y) => y - x);
      out[name] = (a + 0.05) / (b + 0.05);
    }
    return out;
}"""


class BrowserTest(unittest.SynchronousTestCase):
    """Each test gets its own daemon and browser."""

    def setUp(self):
        reason = bs.why_no_browser()
        if reason:
            raise unittest.SkipTest(reason)
        from playwright.sync_api import sync_playwright
        self.daemon = bs.Daemon()
        self.addCleanup(self.daemon.stop)
        self.pw = sync_playwright().start()
        self.addCleanup(self.pw.stop)
        self.browser = self.pw.chromium.launch(executable_path=bs.CHROMIUM, args=bs.CHROMIUM_ARGS)
        self.addCleanup(self.browser.close)
        self.errors = []

    def open_page(self, width=1280, height=800, path="/"):
        context = self.browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        self.addCleanup(context.close)
        page = context.new_page()
        page.set_default_timeout(15000)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.goto(self.daemon.url + path)
        return page

    def assertNoPageErrors(self):
        self.assertEqual(self.errors, [], "JavaScript errors on the page")

    def assertNoHorizontalScroll(self, page, view):
        width = page.evaluate("document.documentElement.scrollWidth")
        inner = page.evaluate("window.innerWidth")
        self.assertLessEqual(width, inner, "horizontal scrolling in the %s view" % view)
        # Nothing in view may stick out to the right either (overflow hidden would hide it).
        wide = page.evaluate("""() => [...document.querySelectorAll('body *')].filter(e => {
              const r = e.getBoundingClientRect();
              return r.width > 0 && r.height > 0 && r.right > window.innerWidth + 1
                     && getComputedStyle(e).visibility !== 'hidden' && e.closest('.pane, .topbar, .views')
                     && !e.closest('.tl-layer') && e.offsetParent !== null;
            }).map(e => e.tagName + '.' + e.className + ' ' + (e.parentElement && e.parentElement.className) + ' "' + e.textContent.slice(0, 40) + '" ' + Math.round(e.getBoundingClientRect().right)).slice(0, 5)""")
        self.assertEqual(wide, [], "elements wider than the %s view" % view)

    # ---------------------------------------------------------------------------------------
    def test_live_session_timeline_details_state_export(self):
        from playwright.sync_api import expect
        # Tall enough that every row of this short conversation is in view (the list is virtual).
        page = self.open_page(width=1280, height=1000)
        expect(page.locator("#feed-state")).to_have_text("live")
        expect(page.locator("#session-list")).to_contain_text("No sessions yet")

        # The session appears without reloading the page as soon as the devices connect.
        pair = bs.Pair(self.daemon, RM_ID, CEM_ID)
        self.addCleanup(pair.close)
        item = page.locator("button.session", has_text=RM_ID)
        expect(item).to_be_visible()
        expect(item.locator(".state")).to_have_text("live")
        item.click()
        expect(page.locator("#session-caption")).to_contain_text(CEM_ID)

        # The conversation runs while the page watches: rows appear live, in order.
        steps = conversation()
        for sender, message in steps:
            pair.send(sender, message)
        rows = page.locator(".tl-row.tl-msg")
        expect(rows).to_have_count(len(steps))
        types = rows.locator(".c-type").all_inner_texts()
        expected = [m["message_type"] for _, m in steps]
        self.assertEqual([t.split()[-1] for t in types], expected)
        directions = rows.locator(".c-dir").all_inner_texts()
        self.assertEqual(directions, ["RM → CEM" if s == "RM" else "CEM → RM" for s, _ in steps])
        # Connection events sit between the messages.
        expect(page.locator(".tl-event", has_text="RM connected")).to_have_count(1)
        expect(page.locator(".tl-event", has_text="CEM connected")).to_have_count(1)

        # Badges: the handshake is valid, the invalid measurement and the stray status are errors.
        badge = lambda n: rows.nth(n).locator(".badge")
        expect(badge(0)).to_have_text("valid")
        expect(badge(8)).to_have_text("error")
        expect(badge(len(steps) - 1)).to_have_text("error")
        # The ReceptionStatus rows are tied to the message they answer.
        expect(rows.nth(1).locator(".c-ack")).to_have_text(re.compile(r"#\d+"))
        answered = rows.nth(0).locator(".c-ack")
        expect(answered).to_contain_text("OK")
        expect(rows.nth(9).locator(".c-type")).to_contain_text("INVALID_MESSAGE")
        expect(rows.nth(8).locator(".c-ack")).to_contain_text("INVALID_MESSAGE")
        page.screenshot(path=bs.artifact("timeline-1280.png"))

        # Details: the format error at its JSON path, the stateful finding with its rule.
        rows.nth(8).click()
        details = page.locator("#details")
        expect(details.locator("h2")).to_contain_text("PowerMeasurement")
        expect(details.locator(".finding .path")).to_contain_text(["$.values[0].value"])
        expect(details.locator(".finding .rule").first).to_have_text("R-004")
        expect(details.locator("mark.err")).to_contain_text('"lots"')
        expect(details.locator("pre.raw")).to_have_text(json.dumps(steps[8][1]))
        page.screenshot(path=bs.artifact("details-format-error-1280.png"))
        rows.nth(len(steps) - 1).click()
        expect(details.locator(".finding", has_text="R-040")).to_be_visible()
        expect(details.locator(".finding", has_text="R-040").locator(".badge")).to_have_text("error")
        page.screenshot(path=bs.artifact("details-stateful-finding-1280.png"))

        # Keyboard: the timeline moves with the arrow keys, Home and End.
        page.locator("#timeline").focus()
        page.keyboard.press("Home")
        expect(details.locator("h2")).to_contain_text("#1 ")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        expect(details.locator("h2")).to_contain_text("Handshake")    # #4: the RM's Handshake
        selected = page.locator(".tl-row.selected")
        expect(selected).to_have_count(1)
        self.assertEqual(page.locator("#timeline").get_attribute("aria-activedescendant"),
                         selected.get_attribute("id"))
        page.keyboard.press("End")
        expect(details.locator("h2")).to_contain_text("ReceptionStatus")

        # Filters: validity, rule, sender, type.
        page.select_option("#f-validity", "error")
        expect(rows).to_have_count(2)
        page.select_option("#f-validity", "")
        expect(page.locator("#f-rule option", has_text="R-040")).to_have_count(1)
        page.select_option("#f-rule", "R-040")
        expect(rows).to_have_count(1)
        expect(rows.first.locator(".c-type")).to_contain_text("ReceptionStatus")
        page.select_option("#f-rule", "")
        page.select_option("#f-sender", "CEM")
        expect(rows).to_have_count(sum(1 for s, _ in steps if s == "CEM"))
        page.select_option("#f-sender", "")
        page.select_option("#f-type", "Handshake")
        expect(rows).to_have_count(2)
        page.select_option("#f-type", "")
        expect(rows).to_have_count(len(steps))

        # Pause holds live rows back; resume shows them.
        page.click("#pause")
        extra = {"message_type": "PowerMeasurement", "message_id": "b0000000-0000-4000-8000-0000000000aa",
                 "measurement_timestamp": "2025-06-02T10:00:01Z",
                 "values": [{"commodity_quantity": "ELECTRIC.POWER.3_PHASE_SYMMETRIC", "value": 12.5}]}
        pair.send("RM", extra)
        expect(page.locator("#timeline-status")).to_contain_text("1 new waiting")
        expect(rows).to_have_count(len(steps))
        page.click("#pause")
        expect(rows).to_have_count(len(steps) + 1)

        # State panel: the selected control type and the handshake.
        page.click(".views [data-view=state]")
        state = page.locator("#state-body")
        expect(state.locator("[data-testid=control-type]")).to_have_text("FILL_RATE_BASED_CONTROL")
        expect(state).to_contain_text("0.0.2-beta")
        expect(state).to_contain_text("Heat pump with buffer")
        # The system description in brief: the actuator and its active operation mode.
        expect(state.locator(".actuator h4").first).to_contain_text("Actuator a100…0041")
        expect(state.locator("li.active-mode")).to_contain_text("active")
        # The measurement sent while paused still waits for its ReceptionStatus.
        expect(state).to_contain_text("PowerMeasurement")
        page.screenshot(path=bs.artifact("state-1280.png"))

        # Export: the transcript downloads and `python -m s2proxy check` accepts it.
        with page.expect_download() as info:
            page.click("#export")
        path = bs.artifact("exported-transcript.jsonl")
        info.value.save_as(path)
        with open(path) as f:
            exported = [json.loads(line) for line in f if line.strip()]
        self.assertEqual(len(exported), len(steps) + 1)
        self.assertEqual([e["sender"] for e in exported[:len(steps)]], [s for s, _ in steps])
        code, findings, stderr = bs.check_transcript(path)
        self.assertIn(code, (0, 1), stderr)
        rules = {f["rule"] for f in findings}
        self.assertIn("R-004", rules)
        self.assertIn("R-040", rules)

        # Inject form: validates first, then sends into the live conversation.
        page.click(".views [data-view=inject]")
        page.fill("#inject-text", json.dumps({"message_type": "SessionRequest", "message_id": "x",
                                              "request": "TERMINATE"}))
        expect(page.locator("#inject-send")).to_be_disabled()
        page.click("#inject-validate")
        expect(page.locator("#inject-output")).to_contain_text("Invalid")
        expect(page.locator("#inject-send")).to_be_disabled()
        page.fill("#inject-text", json.dumps({"message_type": "SessionRequest",
                                              "message_id": "c0000000-0000-4000-8000-0000000000bb",
                                              "request": "TERMINATE"}))
        page.click("#inject-validate")
        expect(page.locator("#inject-output")).to_contain_text("ready to send")
        page.click("#inject-send")
        expect(page.locator("#inject-output")).to_contain_text("Injected")
        self.assertIn("SessionRequest", pair.rm.recv(timeout=10))
        expect(page.locator(".tl-row .tag-injected")).to_have_count(1)
        page.screenshot(path=bs.artifact("inject-1280.png"))

        # Both sides leave: the session turns "closed" without a reload.
        pair.close()
        expect(item.locator(".state")).to_have_text("closed")
        expect(page.locator(".tl-event", has_text="RM disconnected")).to_have_count(1)
        page.click(".views [data-view=details]")
        rows.nth(8).click()
        page.screenshot(path=bs.artifact("overview-1280.png"))
        # The README's picture (docs/screenshots/webui.png is a copy of this one).
        page.set_viewport_size({"width": 1280, "height": 760})
        page.locator("#timeline").evaluate("el => { el.scrollTop = 0; }")
        page.screenshot(path=bs.artifact("readme-1280x760.png"))
        self.assertNoHorizontalScroll(page, "1280 px")
        # WCAG AA: the validity badges' text keeps 4.5:1 against their own background.
        ratios = page.evaluate(CONTRAST_JS)
        self.assertEqual(sorted(ratios), ["error", "valid", "warning"])
        for name, ratio in ratios.items():
            self.assertGreaterEqual(ratio, 4.5, "contrast of the %s badge" % name)
        self.assertNoPageErrors()

    def test_phone_width_has_no_horizontal_scrolling(self):
        from playwright.sync_api import expect
        pair = bs.Pair(self.daemon, RM_ID, CEM_ID)
        self.addCleanup(pair.close)
        for sender, message in conversation():
            pair.send(sender, message)
        page = self.open_page(width=375, height=740)
        item = page.locator("button.session", has_text=RM_ID)
        expect(item).to_be_visible()
        self.assertNoHorizontalScroll(page, "sessions")
        page.screenshot(path=bs.artifact("phone-sessions.png"))
        item.click()
        # Only the rows in view exist (virtual list): count through the status line.
        expect(page.locator("#timeline-status")).to_contain_text("%d messages" % len(conversation()))
        expect(page.locator("#timeline")).to_be_visible()
        self.assertNoHorizontalScroll(page, "timeline")
        page.screenshot(path=bs.artifact("phone-timeline.png"))
        # Opening a row (Enter) shows its details in their own view.
        page.locator("#timeline").focus()
        page.keyboard.press("Home")
        for _ in range(30):          # down to the invalid measurement, past the connection events
            if "PowerMeasurement" in (page.locator(".tl-row.selected").text_content() or ""):
                break
            page.keyboard.press("ArrowDown")
        expect(page.locator("#timeline-pane")).to_be_visible()   # moving does not leave the timeline
        page.keyboard.press("Enter")
        expect(page.locator("#details")).to_be_visible()
        expect(page.locator("#details h2")).to_contain_text("PowerMeasurement")
        expect(page.locator("#details .finding .path").first).to_have_text("$.values[0].value")
        self.assertNoHorizontalScroll(page, "details")
        page.screenshot(path=bs.artifact("phone-details.png"))
        page.click(".views [data-view=state]")
        expect(page.locator("[data-testid=control-type]")).to_have_text("FILL_RATE_BASED_CONTROL")
        self.assertNoHorizontalScroll(page, "state")
        page.screenshot(path=bs.artifact("phone-state.png"))
        page.click(".views [data-view=inject]")
        self.assertNoHorizontalScroll(page, "inject")
        self.assertNoPageErrors()

    def test_kept_message_and_session_filters(self):
        """A message kept for an absent peer is tagged, its delivery shows; the list filters by id and time."""
        from playwright.sync_api import expect
        from websockets.sync.client import connect
        page = self.open_page()
        expect(page.locator("#feed-state")).to_have_text("live")
        rm = connect(self.daemon.device_url("RM", "rm-early", "cem-late"), open_timeout=10)
        self.addCleanup(rm.close)
        handshake = conversation()[0][1]
        rm.send(json.dumps(handshake))
        item = page.locator("button.session", has_text="rm-early")
        item.click()
        row = page.locator(".tl-row.tl-msg").first
        expect(row.locator(".tag-kept")).to_have_text("kept")
        cem = connect(self.daemon.device_url("CEM", "rm-early", "cem-late"), open_timeout=10)
        self.addCleanup(cem.close)
        self.assertEqual(json.loads(cem.recv(timeout=10)), handshake)
        expect(page.locator(".tl-event", has_text="delivered")).to_have_count(1)
        row.click()
        expect(page.locator("#details")).to_contain_text("delivered")

        # Filters of the sessions list: by id, and by a time window.
        other = connect(self.daemon.device_url("RM", "rm-other", "cem-other"), open_timeout=10)
        self.addCleanup(other.close)
        sessions = page.locator("button.session")
        expect(sessions).to_have_count(2)
        page.fill("#filter-id", "OTHER")
        expect(sessions).to_have_count(1)
        expect(sessions.first).to_contain_text("rm-other")
        page.fill("#filter-id", "")
        expect(sessions).to_have_count(2)
        page.fill("#filter-to", "2020-01-01T00:00:00")
        expect(sessions).to_have_count(0)
        expect(page.locator("#session-list")).to_contain_text("No session matches")
        page.fill("#filter-to", "")
        page.fill("#filter-from", "2020-01-01T00:00:00")
        expect(sessions).to_have_count(2)
        self.assertNoPageErrors()

    def test_timeline_stays_virtual_with_100000_messages(self):
        """Only the rows in view exist in the DOM, however long the session; End reaches the last."""
        from playwright.sync_api import expect
        page = self.open_page()
        expect(page.locator("#feed-state")).to_have_text("live")
        count = page.evaluate("""async () => {
            const { Session } = await import('/js/model.js');
            const s = new Session('synthetic');
            const t0 = Date.parse('2025-06-02T10:00:00Z');
            for (let i = 0; i < 100000; i++) {
              const origin = i % 2 ? 'CEM' : 'RM';
              const msg = i % 2
                ? { message_type: 'ReceptionStatus', subject_message_id: 'm' + (i - 1), status: 'OK' }
                : { message_type: 'PowerMeasurement', message_id: 'm' + i, measurement_timestamp: '2025-06-02T10:00:00Z',
                    values: [{ commodity_quantity: 'ELECTRIC.POWER.L1', value: i }] };
              s.add({ seq: i + 1, event: 'forwarded', origin, timestamp: new Date(t0 + i).toISOString(),
                      s2_msg: msg, s2_msg_type: msg.message_type, valid: true, validation_errors: [], findings: [] });
            }
            window.s2proxyApp.app.session = s;
            window.s2proxyApp.timeline.setSession(s);
            return s.rows.length;
        }""")
        self.assertEqual(count, 100000)
        rows = page.locator(".tl-row")
        expect(rows.first).to_be_visible()
        self.assertLess(rows.count(), 200)
        page.locator("#timeline").focus()
        page.keyboard.press("End")
        expect(page.locator(".tl-row.selected .c-n")).to_have_text("#100000")
        expect(page.locator("#details h2")).to_contain_text("#100000")
        expect(page.locator(".tl-row.selected .c-ack")).to_contain_text("#99999")
        self.assertLess(rows.count(), 200)
        page.keyboard.press("PageUp")
        page.keyboard.press("Home")
        expect(page.locator(".tl-row.selected .c-n")).to_have_text("#1")
        self.assertLess(rows.count(), 200)
        self.assertNoPageErrors()
