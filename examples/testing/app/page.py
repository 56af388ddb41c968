"""index.html's Python (PyScript): draws a ChatRoom and sends what the user types.

The query string picks the room, the user's name and, for tests, a short heartbeat:
``index.html?room=lobby&name=alice&heartbeat=1``.
"""

from urllib.parse import parse_qs

from chat import ChatRoom
from pyscript import document, when, window

from pyrt import Heartbeat

params = parse_qs(str(window.location.search).lstrip("?"))


def param(name: str, default: str) -> str:
    return params.get(name, [default])[0]


seconds = float(param("heartbeat", "25"))
room = ChatRoom(
    name=param("name", "guest"),
    channel=param("room", "lobby"),
    heartbeat=Heartbeat(interval=seconds, timeout=min(seconds, 10.0)),
)


def render() -> None:
    document.getElementById("status").textContent = room.state
    pending = len(room.pending)
    document.getElementById("pending").textContent = f"{pending} waiting" if pending else ""
    shown = document.getElementById("messages")
    for message in room.messages[shown.childElementCount :]:
        item = document.createElement("li")
        item.textContent = f"{message['from']}: {message['text']}"  # text, never HTML
        shown.appendChild(item)


@when("submit", "#composer")
def send(event: object) -> None:
    event.preventDefault()  # type: ignore[attr-defined]
    box = document.getElementById("text")
    if box.value.strip():
        room.say(box.value.strip())
    box.value = ""


room.on_change(render)
room.connect()
render()
