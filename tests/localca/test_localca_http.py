"""The HTTP fault table of docs/local-ca.md, row by row, over raw sockets.

Each row sends what a broken or hostile client sends and checks the answer: the status, the
Lambda API's JSON error (`x-amzn-ErrorType` and a JSON body), whether the connection is kept,
and that the server still serves and never logged a traceback.
"""

from __future__ import annotations

import io
import json
import select
import socket
import threading
import time

import pytest
from localca_harness import (
    INVOKE_PATH,
    RawReply,
    exchange,
    http_request,
    read_reply,
    signed_head,
)

from localca.config import Config
from localca.logs import JsonLog
from localca.server import LocalCAServer

REQUEST_TIMEOUT = 1.0
IDLE_TIMEOUT = 2.0
CHAIN = json.dumps({"ca_chain_only": True}).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    stream = io.StringIO()
    config = Config(
        state_dir=tmp_path_factory.mktemp("http") / "state",
        request_timeout=REQUEST_TIMEOUT,
        idle_timeout=IDLE_TIMEOUT,
        max_connections=4,
    )
    with LocalCAServer(config, log=JsonLog(stream)) as server:
        yield server, stream
    log = stream.getvalue()
    assert "Traceback" not in log
    assert '"server_error"' not in log and '"connection_error"' not in log


@pytest.fixture
def port(served):
    server, _ = served
    yield server.port
    # After every row the server still answers a well-formed, signed invocation.
    reply = exchange(server.port, signed_request(server.port, CHAIN))
    assert reply.status == 200 and list(reply.json) == [
        "Base64IssuingCaCertificate",
        "Base64RootCaCertificate",
        "Base64CaChain",
    ]


def signed_request(port: int, body: bytes, **extra: str) -> bytes:
    headers = {
        "Host": f"127.0.0.1:{port}",
        **signed_head(port, body),
        "Content-Length": str(len(body)),
        **extra,
    }
    return http_request("POST", INVOKE_PATH, headers, body)


def head_only(port: int, body: bytes, **extra: str) -> dict[str, str]:
    return {"Host": f"127.0.0.1:{port}", **signed_head(port, body), **extra}


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


# (id, request builder taking the port, status, error code, connection closed afterwards)
ROWS = [
    ("request line is not HTTP", lambda p: b"garbage\r\n\r\n", 400, "BadRequestException", True),
    (
        "HTTP/2.0 request line",
        lambda p: b"GET / HTTP/2.0\r\n\r\n",
        505,
        "HTTPVersionNotSupportedException",
        True,
    ),
    (
        "request line over 8 KiB",
        lambda p: b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        414,
        "RequestURITooLongException",
        True,
    ),
    (
        "headers over 64 KiB",
        lambda p: b"GET / HTTP/1.1\r\nX-A: " + b"b" * 70000 + b"\r\n\r\n",
        431,
        "RequestHeaderFieldsTooLargeException",
        True,
    ),
    (
        "more than 100 headers",
        lambda p: (
            b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n"
        ),
        431,
        "RequestHeaderFieldsTooLargeException",
        True,
    ),
    (
        "Content-Length not a number",
        lambda p: http_request(
            "POST", INVOKE_PATH, {**head_only(p, b""), "Content-Length": "12abc"}
        ),
        400,
        "InvalidRequestContentException",
        True,
    ),
    (
        "negative Content-Length",
        lambda p: http_request("POST", INVOKE_PATH, {**head_only(p, b""), "Content-Length": "-1"}),
        400,
        "InvalidRequestContentException",
        True,
    ),
    (
        "two Content-Length headers",
        lambda p: (
            b"POST "
            + INVOKE_PATH.encode()
            + b" HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
        ),
        400,
        "InvalidRequestContentException",
        True,
    ),
    (
        "Content-Length and chunked together",
        lambda p: http_request(
            "POST",
            INVOKE_PATH,
            {
                **head_only(p, CHAIN),
                "Content-Length": str(len(CHAIN)),
                "Transfer-Encoding": "chunked",
            },
            chunked(CHAIN),
        ),
        400,
        "InvalidRequestContentException",
        True,
    ),
    (
        "a transfer coding other than chunked",
        lambda p: http_request(
            "POST", INVOKE_PATH, {**head_only(p, CHAIN), "Transfer-Encoding": "gzip"}
        ),
        501,
        "NotImplementedException",
        True,
    ),
    (
        "malformed chunked body",
        lambda p: http_request(
            "POST", INVOKE_PATH, {**head_only(p, CHAIN), "Transfer-Encoding": "chunked"}, b"zz\r\n"
        ),
        400,
        "InvalidRequestContentException",
        True,
    ),
    (
        "chunked body, well formed",
        lambda p: http_request(
            "POST",
            INVOKE_PATH,
            {**head_only(p, CHAIN), "Transfer-Encoding": "chunked"},
            chunked(CHAIN),
        ),
        200,
        None,
        False,
    ),
    (
        "Content-Length of 10^14 bytes, signed headers",
        lambda p: http_request(
            "POST", INVOKE_PATH, {**head_only(p, b""), "Content-Length": "99999999999999"}
        ),
        413,
        "RequestEntityTooLargeException",
        True,
    ),
    (
        "Content-Length of 10^14 bytes, no Authorization",
        lambda p: http_request(
            "POST", INVOKE_PATH, {"Host": "x", "Content-Length": "99999999999999"}
        ),
        403,
        "MissingAuthenticationTokenException",
        True,
    ),
    (
        "unknown path",
        lambda p: b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
        404,
        "UnknownOperationException",
        False,
    ),
    (
        "unknown method on the invoke path",
        lambda p: http_request("PATCH", INVOKE_PATH, {"Host": "x", "Content-Length": "2"}, b"{}"),
        404,
        "UnknownOperationException",
        False,
    ),
    (
        "no Authorization header",
        lambda p: http_request("POST", INVOKE_PATH, {"Host": "x", "Content-Length": "2"}, b"{}"),
        403,
        "MissingAuthenticationTokenException",
        False,
    ),
    (
        "body changed after signing",
        lambda p: http_request(
            "POST", INVOKE_PATH, {**head_only(p, b"{}"), "Content-Length": "3"}, b"{ }"
        ),
        403,
        "InvalidSignatureException",
        False,
    ),
    (
        "payload is not JSON",
        lambda p: signed_request(p, b"{nope"),
        400,
        "InvalidRequestContentException",
        False,
    ),
    (
        "payload holds NaN",
        lambda p: signed_request(p, b'{"lifetime": NaN}'),
        400,
        "InvalidRequestContentException",
        False,
    ),
    (
        "payload is not UTF-8",
        lambda p: signed_request(p, b'{"common_name": "\xe9"}'),
        400,
        "InvalidRequestContentException",
        False,
    ),
    (
        "payload nested 100000 deep",
        lambda p: signed_request(p, b"[" * 100000 + b"]" * 100000),
        400,
        "InvalidRequestContentException",
        False,
    ),
    (
        "body ends before Content-Length",
        lambda p: http_request(
            "POST", INVOKE_PATH, {**head_only(p, CHAIN), "Content-Length": "500"}, CHAIN
        ),
        None,
        None,
        True,
    ),
    ("HTTP/0.9 request", lambda p: b"GET /\r\n", None, None, True),
]


@pytest.mark.parametrize(
    ("build", "status", "code", "closed"), [pytest.param(*row[1:], id=row[0]) for row in ROWS]
)
def test_fault_row(port, build, status, code, closed):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(build(port))
        if status is None:  # half-close: the client has nothing more to send
            sock.shutdown(socket.SHUT_WR)
        reply = read_reply(sock)
        if status is not None and not closed:
            # The same connection carries the next request.
            sock.sendall(signed_request(port, CHAIN))
            follow = read_reply(sock)
            assert follow.status == 200

    if status is None:
        assert reply.status in (None, 400)  # no answer, or 400 for the short body
        return
    assert (reply.status, reply.code, reply.closed) == (status, code, closed)
    if code is not None:
        assert reply.headers["content-type"] == "application/json"
        assert isinstance(reply.json["message"], str)


def test_a_body_over_6_mb_is_refused_with_413_and_the_connection_kept(port):
    body = b'{"a": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(signed_request(port, body))
        reply = read_reply(sock)
        sock.sendall(signed_request(port, CHAIN))
        follow = read_reply(sock)

    assert (reply.status, reply.code) == (413, "RequestEntityTooLargeException")
    assert reply.json["message"] == (
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    )
    assert follow.status == 200


def test_a_body_of_exactly_6_mb_is_accepted(port):
    body = b'"' + b"x" * (6 * 1024 * 1024 - 2) + b'"'

    reply = exchange(port, signed_request(port, body))

    assert reply.status == 200 and reply.headers["x-amz-function-error"] == "Unhandled"
    assert reply.json["errorType"] == "AttributeError"  # a JSON string is not an event


def test_expect_100_continue_is_answered_only_once_the_body_is_wanted(port):
    body = CHAIN
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        unsigned = {"Host": "x", "Content-Length": "2", "Expect": "100-continue"}
        sock.sendall(http_request("POST", INVOKE_PATH, unsigned))
        refused = read_reply(sock)  # final answer at once, no 100, body never sent
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        headers = {
            **head_only(port, body),
            "Content-Length": str(len(body)),
            "Expect": "100-continue",
        }
        sock.sendall(http_request("POST", INVOKE_PATH, headers))
        sock.settimeout(10)
        interim = sock.recv(25)
        sock.sendall(body)
        reply = read_reply(sock)

    assert (refused.status, refused.closed) == (403, True)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert reply.status == 200


def test_a_slow_sender_is_cut_off_at_the_request_deadline(port):
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST " + INVOKE_PATH.encode() + b" HTTP/1.1\r\n")
        # A header byte every 0.1 s for up to 6 s: each read is quick, the whole is not.
        for _ in range(60):
            try:
                sock.sendall(b"X")
            except OSError:
                break
            sent += 1
            time.sleep(0.1)
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
        reply = read_reply(sock)

    assert (reply.status, reply.code, reply.closed) == (408, "RequestTimeoutException", True)
    assert sent < 60  # cut off before the sender was done


def test_an_idle_connection_is_closed_without_an_answer(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reply = read_reply(sock)

    assert (reply.status, reply.body, reply.closed) == (None, b"", True)


def test_connections_beyond_the_limit_wait_and_are_served_when_a_slot_frees(port, served):
    server, _ = served
    holders = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    for sock in holders:
        sock.sendall(b"POST /x HTTP/1.1\r\n")  # each holds a slot until its deadline
    try:
        reply = exchange(port, signed_request(port, CHAIN))
        open_now = server.app.stats.snapshot()["connections"]
    finally:
        for sock in holders:
            sock.close()

    assert reply.status == 200  # queued until a holder was cut off, then served
    assert open_now <= 4


def test_concurrent_requests_with_one_key_issue_exactly_once(port):
    from cryptography.hazmat.primitives.asymmetric import ec
    from support.localca_fixtures import issue_event

    body = json.dumps(issue_event("race.example.com", ec.generate_private_key(ec.SECP256R1())))
    answers: list[dict] = []

    def send() -> None:
        answers.append(exchange(port, signed_request(port, body.encode())).json)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum("CertificateInfo" in a for a in answers) == 1
    assert [a for a in answers if "error" in a] == [
        {"error": "Private key has already been used for a certificate"}
    ] * 11


def test_a_slow_request_holds_up_only_its_own_common_name(port):
    from support.localca_fixtures import issue_event

    slow = json.dumps(issue_event("slow.example.com", sans=["x" * 60 + "."] * 90000)).encode()
    fast = json.dumps(issue_event("fast.example.com")).encode()
    answers: dict[str, RawReply] = {}
    slow_thread = threading.Thread(
        target=lambda: answers.update(slow=exchange(port, signed_request(port, slow)))
    )

    slow_thread.start()
    time.sleep(0.3)  # let the slow one reach the handler
    answers["fast"] = exchange(port, signed_request(port, fast))
    still_running = slow_thread.is_alive()
    slow_thread.join()

    assert "CertificateInfo" in answers["fast"].json
    assert still_running  # the fast one was answered while the slow one was being handled
    assert "CertificateInfo" in answers["slow"].json
