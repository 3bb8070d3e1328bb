"""Connect to a confab server and hold the connection until this process is killed.

Usage: python hold_socket.py URL TRANSPORT TOKEN

Prints `connected` once the server's `session` event has arrived. The parent test waits
for that line before it kills or stops this process.
"""

import sys
import threading

import socketio

# Seconds to wait for the connection and for the session event.
CONNECT_TIMEOUT = 10.0


def main() -> int:
    url, transport, token = sys.argv[1:4]
    client = socketio.Client(reconnection=False)
    session = threading.Event()
    client.on("session", lambda _payload: session.set())
    client.connect(
        url, transports=[transport], auth={"token": token}, wait_timeout=CONNECT_TIMEOUT
    )
    if not session.wait(CONNECT_TIMEOUT):
        print(f"no session event within {CONNECT_TIMEOUT} s", file=sys.stderr)
        return 1
    print("connected", flush=True)
    client.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
