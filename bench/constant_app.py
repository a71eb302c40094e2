"""The ceiling: a Flask app that returns constant bytes, served exactly like roomc (same granian shape)."""
from flask import Flask, Response

BODY = (b'{"actions":[{"say":{"text":"You are joining m as the host."}},{"conference":{"name":"m",'
        b'"startOnEnter":true,"endOnExit":true,"beep":true,"maxParticipants":10}}]}')
app = Flask(__name__)


@app.post("/conference/join")
def join() -> Response:
    return Response(BODY, mimetype="application/json")
