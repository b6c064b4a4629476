"""The twisted.web resource tree on the one listening port.

Devices, the HTTP API, the live feeds, the metrics and the web page share the port, as in
flexiblepower/s2-analyzer. Each feature adds its resources in its own section below.
"""

import os

from twisted.web import resource, server, static

from s2proxy.websocket import DeviceRoutes

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")


class NotFound(resource.Resource):
    isLeaf = True

    def render(self, request):
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"application/json")
        return b'{"error": "not found"}'


class Branch(resource.Resource):
    """A resource whose unknown children answer a JSON 404 instead of twisted.web's HTML page."""

    def getChild(self, path, request):
        if path == b"" and b"" in self.children:
            return self.children[b""]
        return NotFound()


def build_root(app):
    """Build the resource tree for ``app`` (an :class:`s2proxy.service.S2Proxy`)."""
    root = Branch()
    backend = Branch()
    root.putChild(b"backend", backend)

    # -- devices (issue 2) ---------------------------------------------------------------------
    devices = DeviceRoutes(app.device_factory)
    backend.putChild(b"rm", devices)
    backend.putChild(b"cem", devices)

    # -- history, API, feeds, metrics (issue 4) ------------------------------------------------
    from s2proxy.api import add_api
    add_api(app, backend, root)

    # -- connectors API (issue 5) --------------------------------------------------------------

    # -- web page (issue 6) --------------------------------------------------------------------
    if os.path.isdir(WEB_DIR):
        page = static.File(WEB_DIR)
        page.indexNames = ["index.html"]
        page.childNotFound = NotFound()
        for name in os.listdir(WEB_DIR):
            root.putChild(name.encode("utf-8"), page.getChild(name.encode("utf-8"), None))
        index = os.path.join(WEB_DIR, "index.html")
        if os.path.exists(index):
            root.putChild(b"", static.File(index))

    return root


class QuietSite(server.Site):
    """A Site that never shows tracebacks and logs requests only at debug level."""

    displayTracebacks = False

    def log(self, request):
        pass


def build_site(app):
    return QuietSite(build_root(app))
