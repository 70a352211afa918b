"""Helpers of the scaled-out layout test that run inside its processes."""

import json
import os

from roles.directory import DirectoryBackend


class RecordingDirectoryBackend(DirectoryBackend):
    """A directory that records each call as a JSON line in PIM_SCALED_DIRECTORY_LOG (one
    write with O_APPEND per call: lines from several processes never interleave)."""

    def _record(self, operation: str, assignment) -> dict:
        line = json.dumps({"operation": operation, "assignment": str(assignment.pk), "pid": os.getpid()})
        fd = os.open(os.environ["PIM_SCALED_DIRECTORY_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
        return {"recorded": True}

    def grant(self, assignment) -> dict:
        return self._record("grant", assignment)

    def revoke(self, assignment) -> dict:
        return self._record("revoke", assignment)
