"""A fake docker credential helper speaking the real protocol, for tests.

Run as ``python store_helper.py NAME ACTION`` by a ``docker-credential-NAME`` wrapper (see
:func:`tests.support.credhelpers.install_store_helper`), with the server URL on stdin.
``$IMGINSPECT_HELPER_DIR/NAME.json`` maps server URLs to ``{"Username": ..., "Secret": ...}``;
every call is appended to ``NAME.log`` as ``ACTION SERVER_URL``. ``get`` answers the stored
JSON, or prints "credentials not found in native keychain" and exits 1, as the
docker-credential-helpers programs do.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    name, action = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
    directory = Path(os.environ["IMGINSPECT_HELPER_DIR"])
    server_url = sys.stdin.read().strip()
    with open(directory / f"{name}.log", "a", encoding="utf-8") as log:
        log.write(f"{action} {server_url}\n")
    if action != "get":
        print(f"unsupported action {action!r}", file=sys.stderr)
        return 1
    store_path = directory / f"{name}.json"
    store = json.loads(store_path.read_text()) if store_path.exists() else {}
    entry = store.get(server_url)
    if entry is None:
        print("credentials not found in native keychain")
        return 1
    answer = {"ServerURL": server_url, "Username": entry["Username"], "Secret": entry["Secret"]}
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
