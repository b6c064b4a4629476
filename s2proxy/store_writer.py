"""The history writer process (``python -m s2proxy.store_writer``), started by ``ProcessStore``.

It receives batches of events as length-prefixed pickles on stdin (the first frame is the
configuration), writes each batch in one transaction with the same code as the writer thread
(:meth:`s2proxy.store.Store._write_batch`), and answers every committed batch with its size (an
8-byte count) on stdout. It applies retention every ``retention_interval`` seconds. When stdin
closes (the daemon stopped, or died) it writes what it has received and exits, so a ``kill -9``
of the daemon loses only what the daemon had not yet handed over.
"""

import os
import pickle
import select
import struct
import sys
import time

_HEADER = struct.Struct(">I")
ACK = struct.Struct(">Q")


class FrameReader:
    """Length-prefixed frames from a file descriptor, without blocking past select()."""

    def __init__(self, fd):
        self.fd = fd
        self.buffer = bytearray()
        self.eof = False

    def fill(self):
        data = os.read(self.fd, 1 << 20)
        if not data:
            self.eof = True
        self.buffer += data

    def frames(self):
        buffer = self.buffer
        while len(buffer) >= 4:
            (size,) = _HEADER.unpack_from(buffer)
            if len(buffer) < 4 + size:
                return
            frame = pickle.loads(bytes(buffer[4:4 + size]))
            del buffer[:4 + size]
            yield frame


def _log_to_stderr():
    from twisted.logger import globalLogBeginner, textFileLogObserver
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)


def main():
    _log_to_stderr()
    from s2proxy.store import Store, open_database
    reader = FrameReader(0)
    config = None
    while config is None:
        reader.fill()
        if reader.eof and not reader.buffer:
            return 0
        for frame in reader.frames():
            config = frame
            break
    store = Store(config["path"], None, max_age=config["max_age"], max_bytes=config["max_bytes"],
                  retention_interval=config["retention_interval"], schema_dir=config["schema_dir"],
                  target_version=config["target_version"])
    conn = open_database(config["path"], config["schema_dir"], config["target_version"])
    out = os.fdopen(1, "wb", buffering=0)
    next_retention = 0.0
    try:
        while True:
            # Frames already read (the configuration's read may have brought some) go first.
            for batch in reader.frames():
                store._write_batch(conn, batch)
                try:
                    out.write(ACK.pack(len(batch)))
                except OSError:
                    pass  # the daemon is gone: keep writing what it handed over
            if reader.eof:
                return 0
            now = time.monotonic()
            if now >= next_retention:
                next_retention = now + store.retention_interval
                store._retention_safely(conn)
            ready, _, _ = select.select([0], [], [], max(0.0, next_retention - time.monotonic()))
            if ready:
                reader.fill()
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
