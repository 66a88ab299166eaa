"""Independent check that a cache file is real SQLCipher 4.

Opens the file with the `sqlcipher3` package (its own SQLCipher build, not
ours): with the key it must read the rows; without a key, and with a wrong
key, it must fail. Prints one JSON object with what it saw.

usage: sqlcipher_check.py DB HEXKEY MARKER
"""
import json
import os
import sys

import sqlcipher3


def try_open(path, key_hex):
    conn = sqlcipher3.connect(path)
    try:
        if key_hex is not None:
            conn.execute("PRAGMA key = \"x'%s'\"" % key_hex)
        rows = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        payloads = [bytes(r[0]) for r in conn.execute("SELECT payload FROM entries WHERE encoding = 0")]
        version = conn.execute("PRAGMA cipher_version").fetchone()
        return {"ok": True, "rows": rows, "payloads": payloads, "cipher_version": version[0] if version else None}
    except sqlcipher3.DatabaseError as e:
        return {"ok": False, "error": str(e)}
    finally:
        conn.close()


def main():
    path, key_hex, marker = sys.argv[1], sys.argv[2], sys.argv[3].encode()
    with_key = try_open(path, key_hex)
    without_key = try_open(path, None)
    wrong_key = try_open(path, os.urandom(32).hex())
    print(json.dumps({
        "with_key": {
            "ok": with_key["ok"],
            "rows": with_key.get("rows"),
            "marker_found": any(marker in p for p in with_key.get("payloads", [])),
            "cipher_version": with_key.get("cipher_version"),
            "error": with_key.get("error"),
        },
        "without_key": {"ok": without_key["ok"], "error": without_key.get("error")},
        "wrong_key": {"ok": wrong_key["ok"], "error": wrong_key.get("error")},
    }))


if __name__ == "__main__":
    main()
