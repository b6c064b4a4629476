"""Frame log shared by the interop scripts: every WebSocket frame a peer sent or received, exactly.

The interop tests compare what one side sent with what the other side received, byte for byte, so
each frame is stored as base64 of its exact payload bytes together with its opcode. One JSON object
per line, written and flushed at once, so a script that dies still leaves what it saw:

    {"dir": "sent"|"recv", "binary": false, "b64": "...", "t": 1717322400.123}
    {"dir": "log", "level": "WARNING", "logger": "s2python", "text": "..."}
    {"dir": "end", "ok": true, "text": "..."}

Runs inside the interop venv (s2-python's own Python); no project import.
"""

import base64
import json
import logging
import threading
import time


class FrameLog:
    def __init__(self, path):
        self._file = open(path, "w", encoding="utf-8")
        self._lock = threading.Lock()

    def _write(self, record):
        line = json.dumps(record, sort_keys=True)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def frame(self, direction, data):
        """``data`` as the websockets library gives or takes it: str = text frame, bytes = binary."""
        binary = isinstance(data, (bytes, bytearray, memoryview))
        payload = bytes(data) if binary else data.encode("utf-8")
        self._write({"dir": direction, "binary": binary, "t": time.time(),
                     "b64": base64.b64encode(payload).decode("ascii")})

    def note(self, level, logger, text):
        self._write({"dir": "log", "level": level, "logger": logger, "text": text})

    def end(self, ok, text=""):
        self._write({"dir": "end", "ok": ok, "text": text})

    def close(self):
        with self._lock:
            self._file.close()


class LogToFrameLog(logging.Handler):
    """Copies the library's warnings and errors into the frame log, so a test can tell which
    of them the reference implementation raised itself (e.g. 'no handler is registered')."""

    def __init__(self, framelog, level=logging.WARNING):
        logging.Handler.__init__(self, level)
        self.framelog = framelog

    def emit(self, record):
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self.framelog.note(record.levelname, record.name, text)
        except Exception:  # logging must never break the peer under test
            pass
