"""Three nodes sharing PostgreSQL and Redis, driven by python-socketio clients.

Every check compares `message:new` events by `seq`: in a room, each client must see each
message once, in `seq` order, whichever node it or the sender is connected to.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
import requests
import socketio

from conftest import Cluster, PrivatePostgres, free_port
from support import Api, ChatClient, expect_status

# Seconds a client may take to receive every message after the last one was sent.
COMPLETE_TIMEOUT = 15.0


class Member:
    """A registered user with one Socket.IO connection, which it can move to another
    node. It records every `message:new` of one room, live or from `sync`."""

    def __init__(self, cluster: Cluster, name: str, node: int, transport: str):
        self.cluster = cluster
        self.name = name
        self.transport = transport
        self.token = cluster.api(node).register(name)["token"]
        self.room_id = 0
        self.client: ChatClient | None = None
        # Every client this member opened, oldest first.
        self.clients: list[ChatClient] = []
        self.connect(node)

    def connect(self, node: int) -> None:
        """Connect to `node` and read what was missed with `sync`."""
        url = self.cluster.nodes[node].url
        assert url is not None
        client = ChatClient(url, self.transport, auth={"token": self.token})
        session = client.connect()
        self.client = client
        self.clients.append(client)
        if not self.room_id:
            self.room_id = session["lobby_id"]
        last = self.last_seq()
        pages = client.ok("sync", {"rooms": {str(self.room_id): last}})
        self.synced: list[dict] = []
        for page in pages:
            self.synced.extend(page["messages"])

    def last_seq(self) -> int:
        seqs = [m["seq"] for m in self.messages()]
        return max(seqs, default=0)

    def messages(self) -> list[dict]:
        """Every message of the room seen on any connection, without repeats."""
        seen: dict[int, dict] = {}
        for client in self.clients:
            for m in client.received("message:new", lambda p: p.get("room_id") == self.room_id):
                seen.setdefault(m["id"], m)
        for m in getattr(self, "synced", []):
            seen.setdefault(m["id"], m)
        return sorted(seen.values(), key=lambda m: m["seq"])

    def live(self) -> list[dict]:
        """`message:new` events of the room on the current connection, in arrival order."""
        assert self.client is not None
        return self.client.received("message:new", lambda p: p.get("room_id") == self.room_id)

    def close(self) -> None:
        for client in self.clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - a client of a killed node may fail to close
                pass


def texts_with(messages: list[dict], prefix: str) -> list[dict]:
    return [m for m in messages if m.get("kind") == "text" and m["body"].startswith(prefix)]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    assert predicate(), f"timed out after {timeout} s waiting for {what}"


def send_many(member: Member, prefix: str, count: int, acked: list[dict],
              pause: float = 0.0) -> None:
    """Send `count` messages, recording each acknowledgement; stop at the first failure."""
    assert member.client is not None
    for n in range(count):
        try:
            reply = member.client.call(
                "message:send",
                {"room_id": member.room_id, "body": f"{prefix}{n}",
                 "client_msg_id": f"{member.name}-{prefix}{n}"},
            )
        except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError,
                socketio.exceptions.DisconnectedError):
            return
        if reply.get("ok"):
            acked.append(reply["data"])
        if pause:
            time.sleep(pause)


def members_on_every_node(cluster: Cluster, per_node: int = 2) -> list[Member]:
    members = []
    for node in range(len(cluster.nodes)):
        for k in range(per_node):
            transport = "websocket" if k % 2 == 0 else "polling"
            members.append(Member(cluster, f"n{node}u{k}", node, transport))
    return members


def test_concurrent_sends_reach_every_client_once_in_order(cluster: Cluster) -> None:
    members = members_on_every_node(cluster)
    try:
        start = max(m.last_seq() for m in members)
        acked: list[dict] = []
        threads = [
            threading.Thread(target=send_many, args=(m, f"{m.name}:", 15, acked))
            for m in members
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(acked) == 15 * len(members), "every send was acknowledged"

        expected = sorted(a["seq"] for a in acked)
        for member in members:
            wait_until(
                lambda m=member: len(texts_with(m.live(), "n")) >= len(expected),
                COMPLETE_TIMEOUT, f"{member.name} to receive {len(expected)} messages",
            )
        for member in members:
            live = [m for m in member.live() if m["seq"] > start]
            seqs = [m["seq"] for m in live]
            assert seqs == sorted(seqs), f"{member.name}: live events out of seq order"
            assert len(seqs) == len(set(seqs)), f"{member.name}: a message arrived twice"
            got = sorted(m["seq"] for m in texts_with(live, "n"))
            assert got == expected, f"{member.name} on {member.transport} missed messages"
        # Every client saw the same message under each seq.
        reference = {m["seq"]: m["id"] for m in members[0].live()}
        for member in members[1:]:
            for m in member.live():
                if m["seq"] in reference:
                    assert reference[m["seq"]] == m["id"], f"seq {m['seq']} differs"
    finally:
        for member in members:
            member.close()


def test_client_moving_node_resumes_without_gap(cluster: Cluster) -> None:
    mover = Member(cluster, "mover", 0, "websocket")
    sender = Member(cluster, "sender", 1, "polling")
    try:
        acked: list[dict] = []
        send_many(sender, "before:", 5, acked)
        wait_until(lambda: len(texts_with(mover.messages(), "before:")) == 5,
                   COMPLETE_TIMEOUT, "the mover to receive the first messages")

        assert mover.client is not None
        mover.client.close()
        send_many(sender, "away:", 5, acked)
        mover.connect(2)
        send_many(sender, "after:", 5, acked)

        wait_until(lambda: len(texts_with(mover.messages(), "")) >= 15,
                   COMPLETE_TIMEOUT, "the mover to have every message")
        seen = texts_with(mover.messages(), "")
        assert sorted(m["seq"] for m in seen) == sorted(a["seq"] for a in acked)
        all_seqs = [m["seq"] for m in mover.messages()]
        assert all_seqs == list(range(all_seqs[0], all_seqs[0] + len(all_seqs))), (
            f"the mover's messages have a gap: {all_seqs}"
        )
    finally:
        mover.close()
        sender.close()


def test_sigkill_loses_no_acknowledged_message(cluster: Cluster) -> None:
    victims = [Member(cluster, f"victim{k}", 2, t)
               for k, t in enumerate(["websocket", "polling"])]
    watcher = Member(cluster, "watcher", 0, "websocket")
    try:
        acked: list[dict] = []
        threads = [
            threading.Thread(target=send_many, args=(v, f"{v.name}:", 200, acked, 0.01))
            for v in victims
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(acked) >= 20, COMPLETE_TIMEOUT, "the first acknowledgements")
        cluster.kill(2)
        for thread in threads:
            thread.join(timeout=60)
        assert 20 <= len(acked) < 400, "the node died while its clients were sending"

        # Every acknowledged message is stored, as another node's history shows.
        stored = set()
        after = 0
        api = cluster.api(0)
        for _ in range(20):
            page = api.history(watcher.token, watcher.room_id, after=after, limit=100)
            if not page:
                break
            stored.update(m["id"] for m in page)
            after = page[-1]["seq"]
        missing = [a for a in acked if a["id"] not in stored]
        assert not missing, f"acknowledged but not stored: {missing[:5]}"

        # The victims resume on the surviving nodes and miss nothing.
        for k, victim in enumerate(victims):
            victim.connect(k % 2)
            acked_ids = {a["id"] for a in acked if a["id"]}
            wait_until(
                lambda v=victim: acked_ids <= {m["id"] for m in v.messages()},
                COMPLETE_TIMEOUT, f"{victim.name} to hold every acknowledged message",
            )
        wait_until(
            lambda: {a["id"] for a in acked} <= {m["id"] for m in watcher.messages()},
            COMPLETE_TIMEOUT, "the watcher to receive every acknowledged message",
        )
    finally:
        for member in [*victims, watcher]:
            member.close()


def test_redis_restart_during_sends_leaves_clients_complete(cluster: Cluster) -> None:
    members = members_on_every_node(cluster, per_node=1)
    try:
        start = max(m.last_seq() for m in members)
        acked: list[dict] = []
        threads = [
            threading.Thread(target=send_many, args=(m, f"{m.name}:", 40, acked, 0.05))
            for m in members
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(acked) >= 15, COMPLETE_TIMEOUT, "sends before the outage")
        cluster.redis.stop()
        ready = requests.get(f"{cluster.nodes[0].url}/readyz", timeout=10)
        wait_until(
            lambda: "redis unavailable" in requests.get(
                f"{cluster.nodes[0].url}/readyz", timeout=10).text,
            10, "/readyz to report Redis down",
        )
        expect_status(ready, 200)
        time.sleep(1.5)
        cluster.redis.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(acked) == 40 * len(members), "sends keep working while Redis is down"

        expected = sorted(a["seq"] for a in acked)
        for member in members:
            wait_until(
                lambda m=member: sorted(x["seq"] for x in texts_with(m.live(), "n")) == expected,
                COMPLETE_TIMEOUT, f"{member.name} to receive all {len(expected)} messages",
            )
            seqs = [m["seq"] for m in member.live() if m["seq"] > start]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (
                f"{member.name}: live seqs have a gap or repeat: {seqs}"
            )
        wait_until(
            lambda: requests.get(f"{cluster.nodes[0].url}/readyz", timeout=10).text == "ready\n",
            10, "/readyz to report Redis back",
        )
    finally:
        for member in members:
            member.close()


def test_polling_request_on_another_node_gets_400(cluster: Cluster) -> None:
    """Without sticky sessions a long-polling request can reach a node that does not hold
    its Engine.IO session. That node returns 400 with Engine.IO's unknown-session error,
    and the node that holds the session still serves it."""
    a, b = cluster.nodes[0].url, cluster.nodes[1].url
    handshake = requests.get(f"{a}/socket.io/", params={"EIO": "4", "transport": "polling"},
                             timeout=10)
    expect_status(handshake, 200)
    sid = handshake.text.split('"sid":"')[1].split('"')[0]
    stray = requests.get(f"{b}/socket.io/",
                         params={"EIO": "4", "transport": "polling", "sid": sid}, timeout=10)
    assert stray.status_code == 400, f"expected 400, got {stray.status_code}: {stray.text}"
    assert stray.json() == {"code": "1", "message": "Session ID unknown"}
    same = requests.get(f"{a}/socket.io/",
                        params={"EIO": "4", "transport": "polling", "sid": sid}, timeout=10)
    expect_status(same, 200)



def deployment_nginx_config() -> str:
    """Return the nginx configuration of the "Several nodes" section of
    docs/deployment.md, so the test runs exactly what the page shows."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    section = page.split("## Several nodes", 1)[1]
    match = re.search(r"```nginx\n(.*?)```", section, re.S)
    assert match, "docs/deployment.md has no nginx block under 'Several nodes'"
    return match.group(1)


class Nginx:
    """nginx on a free port of 127.0.0.1 with the deployment page's configuration, the
    documented node ports replaced by the test nodes' ports."""

    def __init__(self, cluster: Cluster, workdir: Path):
        self.port = cluster.nginx_port
        self.workdir = workdir
        config = deployment_nginx_config()
        for documented, node in zip(("8081", "8082", "8083"), cluster.nodes):
            assert node.url is not None
            port = node.url.rsplit(":", 1)[1]
            config = config.replace(f"127.0.0.1:{documented};", f"127.0.0.1:{port};")
        config = config.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        temp = workdir / "temp"
        temp.mkdir(parents=True, exist_ok=True)
        (workdir / "nginx.conf").write_text(
            f"daemon off;\n"
            f"pid {workdir}/nginx.pid;\n"
            f"error_log {workdir}/error.log info;\n"
            f"events {{ worker_connections 256; }}\n"
            f"http {{\n"
            f"access_log {workdir}/access.log;\n"
            f"client_body_temp_path {temp}/body;\n"
            f"proxy_temp_path {temp}/proxy;\n"
            f"fastcgi_temp_path {temp}/fastcgi;\n"
            f"uwsgi_temp_path {temp}/uwsgi;\n"
            f"scgi_temp_path {temp}/scgi;\n"
            f"{config}\n}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.workdir), "-c", str(self.workdir / "nginx.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "stderr.log", "w"),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        log = (self.workdir / "stderr.log").read_text() + (self.workdir / "error.log").read_text()
        self.stop()
        raise AssertionError(f"nginx did not start on port {self.port}:\n{log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def test_documented_nginx_config_serves_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    nginx = Nginx(cluster, tmp_path / "nginx")
    nginx.start()
    members: list[Member] = []
    try:
        # REST through nginx reaches every node in turn. A token made on one node is
        # valid on all of them, because the sessions are in PostgreSQL.
        api = Api(nginx.url)
        token = api.register("rest-via-nginx")["token"]
        for _ in range(6):
            expect_status(requests.get(f"{nginx.url}/readyz", timeout=10), 200)
            expect_status(api.request("GET", "/rooms", token), 200)

        # Socket.IO clients through nginx, on both transports, and one sender per node.
        for transport in ("websocket", "polling"):
            member = Member(cluster, f"via-nginx-{transport}", 0, transport)
            member.client.close()  # type: ignore[union-attr]
            member.clients.clear()
            client = ChatClient(nginx.url, transport, auth={"token": member.token})
            client.connect()
            member.client = client
            member.clients.append(client)
            members.append(member)
        senders = [Member(cluster, f"direct{node}", node, "websocket") for node in range(3)]
        members.extend(senders)
        start = max(m.last_seq() for m in members)

        acked: list[dict] = []
        for sender in senders:
            send_many(sender, f"{sender.name}:", 5, acked)
        expected = sorted(a["seq"] for a in acked)
        for member in members[:2]:
            wait_until(
                lambda m=member: sorted(
                    x["seq"] for x in texts_with(m.live(), "direct")) == expected,
                COMPLETE_TIMEOUT, f"{member.name} to receive every message through nginx",
            )
            seqs = [x["seq"] for x in member.live() if x["seq"] > start]
            assert seqs == sorted(set(seqs)), f"{member.name}: order or repeats wrong: {seqs}"
    finally:
        for member in members:
            member.close()
        nginx.stop()


def lobby_online_count(cluster: Cluster, node: int, member: Member) -> int | None:
    """Return the lobby's `online_count` as one node's room list reports it."""
    response = expect_status(cluster.api(node).request("GET", "/rooms", member.token), 200)
    body = response.json()
    rooms = body["rooms"] if isinstance(body, dict) else body
    for room in rooms:
        if room["id"] == member.room_id:
            return room["online_count"]
    return None


def test_online_count_spans_nodes_and_drops_dead_node(cluster: Cluster) -> None:
    members = [Member(cluster, f"online{node}", node, "websocket") for node in range(3)]
    try:
        # Every node counts the users connected to all three, after one refresh.
        for node in range(3):
            wait_until(lambda n=node: lobby_online_count(cluster, n, members[0]) == 3,
                       15, f"node {node} to count 3 users online in the lobby")

        # A killed node cannot remove its users; their entries expire instead.
        cluster.kill(2)
        members[2].clients.clear()
        # Each node reads the count at its own refresh, up to 5 s apart.
        for node in range(2):
            wait_until(lambda n=node: lobby_online_count(cluster, n, members[n]) == 2,
                       30, f"node {node} to count 2 users online after node 2 died")
    finally:
        for member in members:
            member.close()


def test_presence_events_carry_cluster_count(cluster: Cluster) -> None:
    """A `presence` event counts the room's users on every node, not on the sender's."""
    watcher = Member(cluster, "presence0", 0, "websocket")
    other = Member(cluster, "presence1", 1, "polling")
    newcomer = None
    try:
        newcomer = Member(cluster, "presence2", 2, "websocket")
        assert watcher.client is not None and newcomer.client is not None
        newcomer_id = newcomer.client.user_id

        def about_newcomer(online: bool):
            return lambda p: (p["room_id"] == watcher.room_id
                              and p["user_id"] == newcomer_id and p["online"] is online)

        arrived = watcher.client.wait_for("presence", about_newcomer(True))
        assert arrived["online_count"] == 3, arrived

        newcomer.close()
        left = watcher.client.wait_for("presence", about_newcomer(False))
        assert left["online_count"] == 2, left
    finally:
        for member in (watcher, other, newcomer):
            if member is not None:
                member.close()


def test_moderation_reaches_other_nodes(cluster: Cluster) -> None:
    """A settings change and a ban made on node 0 reach members connected to nodes 1 and
    2 through the bus: `room:updated`, and the banned user's `room:removed`."""
    owner = Member(cluster, "modowner0", 0, "websocket")
    watcher = Member(cluster, "modwatch1", 1, "websocket")
    banned = Member(cluster, "modbanned2", 2, "polling")
    try:
        assert owner.client is not None
        assert watcher.client is not None
        assert banned.client is not None
        room = owner.client.ok("room:create", {"name": "cluster-stage", "visibility": "public"})
        for member in (watcher, banned):
            assert member.client is not None
            member.client.ok("room:join", {"room_id": room["id"]})

        owner.client.ok("room:settings", {"room_id": room["id"], "moderated": True})
        updated = watcher.client.wait_for(
            "room:updated", lambda p: p["id"] == room["id"] and p["moderated"] is True)
        assert updated["topic_locked"] is True, updated
        refused = banned.client.error("message:send", {"room_id": room["id"], "body": "hi"})
        assert refused["code"] == "room_moderated", refused

        owner.client.ok("room:ban", {"room_id": room["id"], "user_id": banned.client.user_id})
        removed = banned.client.wait_for("room:removed", lambda p: p["room_id"] == room["id"])
        assert removed["reason"] == "banned", removed
        event = watcher.client.wait_for(
            "message:new", lambda p: p["room_id"] == room["id"] and p["kind"] == "ban")
        assert event["target_id"] == banned.client.user_id, event
        rejoin = banned.client.error("room:join", {"room_id": room["id"]})
        assert rejoin["code"] == "banned", rejoin
    finally:
        for member in (owner, watcher, banned):
            member.close()


def test_rename_reaches_other_nodes(cluster: Cluster) -> None:
    """A display name change made through node 0 reaches a member connected to node 1 as
    `user:updated`, relayed by the bus."""
    renamer = Member(cluster, "rename0", 0, "websocket")
    watcher = Member(cluster, "renamewatch1", 1, "websocket")
    try:
        assert renamer.client is not None and watcher.client is not None
        reply = cluster.api(0).request(
            "PATCH", "/me", renamer.token, json={"display_name": "Renamed on node 0"})
        expect_status(reply, 200)
        update = watcher.client.wait_for(
            "user:updated", lambda p: p["user"]["id"] == renamer.client.user_id)
        assert update["user"]["display_name"] == "Renamed on node 0", update
        assert update["previous_display_name"] == "rename0", update
    finally:
        for member in (renamer, watcher):
            member.close()


def test_sign_in_budget_is_shared_by_nodes(cluster: Cluster) -> None:
    """With a burst of 3 and a slow refill, one address gets 3 sign-ins in all."""
    strict = {"--auth-burst": "3", "--auth-rate": "0.01"}
    nodes = [cluster.start_node(strict), cluster.start_node(strict)]
    statuses = []
    for n in range(6):
        api = Api(nodes[n % 2].url)
        statuses.append(api.request("POST", "/auth/guest", json={}).status_code)
    assert statuses.count(201) == 3, statuses
    assert statuses.count(429) == 3, statuses


def test_send_budget_is_shared_by_nodes(cluster: Cluster) -> None:
    """With a burst of 4 and a slow refill, a user gets 4 sends in all, not 4 per node."""
    strict = {"--send-burst": "4", "--send-rate": "0.01"}
    first = cluster.start_node(strict)
    second = cluster.start_node(strict)
    token = cluster.api(0).register("budget")["token"]
    clients = [ChatClient(node.url, "polling", auth={"token": token})
               for node in (first, second)]
    try:
        sessions = [client.connect() for client in clients]
        room_id = sessions[0]["lobby_id"]
        accepted = 0
        rejected = []
        for n in range(8):
            reply = clients[n % 2].call("message:send", {"room_id": room_id, "body": f"b{n}"})
            if reply.get("ok"):
                accepted += 1
            else:
                rejected.append(reply["error"]["code"])
        assert accepted == 4, f"{accepted} sends accepted across two nodes"
        assert rejected == ["rate_limited"] * 4
    finally:
        for client in clients:
            client.close()


# Seconds a node may take to serve again after PostgreSQL returns.
RECOVERY_TIMEOUT = 60.0


def test_postgres_outage_and_recovery(
    cluster: Cluster, private_postgres: PrivatePostgres
) -> None:
    """One node on a PostgreSQL server of its own, which the test stops and restarts."""
    # A port named up front, so that `--allowed-origins` accepts this node's clients.
    cluster.node_ports.append(free_port())
    node = cluster.start_node({"--database-url": private_postgres.url})
    index = cluster.nodes.index(node)
    api = cluster.api(index)
    token = api.register("outage")["token"]
    client = ChatClient(node.url, "websocket", auth={"token": token})
    room_id = client.connect()["lobby_id"]
    readyz = f"{node.url}/readyz"
    try:
        before = client.send(room_id, "before", client_msg_id="outage-before")

        private_postgres.stop("immediate")
        reply = client.call("message:send", {"room_id": room_id, "body": "during",
                                             "client_msg_id": "outage-during"})
        assert reply.get("ok") is False, f"a send without PostgreSQL was acknowledged: {reply}"
        assert reply["error"]["code"] == "store_unavailable"
        ready = requests.get(readyz, timeout=10)
        assert ready.status_code == 503, ready.text

        private_postgres.start()
        wait_until(lambda: requests.get(readyz, timeout=10).status_code == 200,
                   RECOVERY_TIMEOUT, "/readyz to return 200 after PostgreSQL restarted")
        after = client.send(room_id, "after", client_msg_id="outage-after")

        history = api.history(token, room_id)
        stored = [(m["id"], m["body"]) for m in texts_with(history, "")]
        assert stored == [(before["id"], "before"), (after["id"], "after")]
        assert after["seq"] == before["seq"] + 1, "the failed send took no seq"
    finally:
        client.close()
