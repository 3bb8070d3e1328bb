# The Flask-SocketIO chat sample as its documentation shows it: every `message` is
# sent back to all clients. The async mode is whatever Flask-SocketIO picks from the
# installed packages: threading in requirements-threading.txt, gevent in
# requirements-gevent.txt. Listens on 127.0.0.1 only; PORT sets the port.
import os

from flask import Flask
from flask_socketio import SocketIO, send

app = Flask(__name__)
socketio = SocketIO(app)


@socketio.on("message")
def handle_message(message):
    send(message, broadcast=True)


if __name__ == "__main__":
    print(f"flask-socketio peer, async mode {socketio.async_mode}", flush=True)
    socketio.run(
        app,
        host="127.0.0.1",
        port=int(os.environ.get("PORT", "3300")),
        allow_unsafe_werkzeug=True,
    )
