"""Reading a growing log: the bytes of whole lines, where they end, and a checkpoint of that position.

`Tail` follows one path the way `tail -F` does: it reads what is appended; when the path is
renamed away (logrotate, Asterisk's own rotation) it finishes the old file and starts on the new one
from its beginning; when the file is truncated in place (copytruncate) it starts again from 0. Its
position (device, inode, offset) goes into a checkpoint written only after the lines before it were
delivered (at-least-once): after a restart reading resumes there, in the same file even if it was
rotated meanwhile (found by its inode next to the path), and the lines read twice map to the same
event ids, so the processor counts them once.
"""
from __future__ import annotations

import json
import os
import select
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


class Tail:
    """Whole lines appended to `path`, from `start` ((dev, ino, offset) of a checkpoint) or 0."""

    def __init__(self, path: str | Path, start: tuple[int, int, int] | None = None) -> None:
        self.path = Path(path)
        self.notes: list[str] = []  # what happened that the user should know (rotations, truncations)
        self._pending: list[tuple[object, int]] = []  # (file, its offset) to finish before `path`
        self._buf = b""
        self.fh: BinaryIO = None  # type: ignore[assignment]  # _open() below, or the rotated file
        if start is not None:
            dev, ino, offset = start
            st = self._stat()
            if st is not None and (st.st_dev, st.st_ino) == (dev, ino):
                self._open(offset if st.st_size >= offset else 0)
                if st.st_size < offset:
                    self.notes.append(f"{self.path} is shorter than the checkpoint: read again from its beginning")
                return
            rotated = self._find(dev, ino)
            if rotated is not None:
                fh = open(rotated, "rb")
                fh.seek(offset)
                self.fh, self.dev, self.ino, self.offset = fh, dev, ino, offset
                self.notes.append(f"resuming in {rotated} (rotated while stopped), then {self.path}")
                return
            self.notes.append(f"the checkpointed file is gone: reading {self.path} from its beginning")
        self._open(0)

    def _stat(self):
        try:
            return os.stat(self.path)
        except FileNotFoundError:
            return None

    def _open(self, offset: int) -> None:
        fh = open(self.path, "rb")
        st = os.fstat(fh.fileno())
        fh.seek(offset)
        self.fh, self.dev, self.ino, self.offset = fh, st.st_dev, st.st_ino, offset

    def _find(self, dev: int, ino: int) -> Path | None:
        for p in sorted(self.path.parent.glob(self.path.name + "*")):
            try:
                st = os.stat(p)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (dev, ino):
                return p
        return None

    def position(self) -> tuple[int, int, int]:
        """(dev, ino, offset) just after the last line returned."""
        return self.dev, self.ino, self.offset

    def read(self) -> list[bytes]:
        """The whole lines available now (maybe none); switches file on rotation or truncation."""
        data = self.fh.read(CHUNK)
        if data:
            self._buf += data
            cut = self._buf.rfind(b"\n") + 1
            if not cut:
                return []
            lines, self._buf = self._buf[:cut].splitlines(), self._buf[cut:]
            self.offset += cut
            return lines
        st = self._stat()
        if st is None:  # renamed away, the new one not created yet
            return []
        if (st.st_dev, st.st_ino) != (self.dev, self.ino):
            # Rotated: finish the old file (a last line without its newline counts), then the new one.
            rest = self.fh.read()
            tail = (self._buf + rest).splitlines()
            self.fh.close()
            self._buf = b""
            self.notes.append(f"{self.path} was rotated: now reading the new file")
            self._open(0)
            return tail
        if st.st_size < self.offset:  # truncated in place
            self.notes.append(f"{self.path} was truncated: reading it again from its beginning")
            self._buf = b""
            self._open(0)
        return []

    def final(self) -> list[bytes]:
        """At the end of a file read once (not followed): a last line without its newline."""
        lines, self._buf = self._buf.splitlines(), b""
        self.offset += sum(len(x) for x in lines)
        return lines

    def close(self) -> None:
        if self.fh is not None:  # type: ignore[comparison-overlap]  # a constructor that failed
            self.fh.close()


class Stream:
    """Whole lines of a pipe (standard input) as they come; `eof` once it is closed."""

    def __init__(self, fd: int, timeout: float) -> None:
        self.fd, self.timeout, self.eof = fd, timeout, False
        self._buf = b""

    def read(self) -> list[bytes]:
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            return []
        data = os.read(self.fd, CHUNK)
        if not data:
            self.eof = True
            lines, self._buf = self._buf.splitlines(), b""
            return lines
        self._buf += data
        cut = self._buf.rfind(b"\n") + 1
        lines, self._buf = self._buf[:cut].splitlines(), self._buf[cut:]
        return lines


def load_checkpoint(path: Path) -> dict | None:
    """The checkpoint, or None when there is none yet; ValueError when it is unreadable."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {path} is unreadable ({exc}); remove it to start from the beginning") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), int) for k in ("dev", "ino", "offset")):
        raise ValueError(f"checkpoint {path} is not one this command wrote; remove it to start from the beginning")
    return data


def save_checkpoint(path: Path, position: tuple[int, int, int], source: str, state: dict) -> None:
    """Atomically: a crash leaves the old checkpoint or the new one, never half of one."""
    dev, ino, offset = position
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump({"source": source, "dev": dev, "ino": ino, "offset": offset, "state": state}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
