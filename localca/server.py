"""The HTTP shell: Lambda's Invoke REST API on loopback, SigV4 checks, faults and stats.

Hardening (docs/local-ca.md, "Faults and limits"): headers are authenticated before any body
byte is read; the body is bounded (6 MB, as Lambda); every read has an idle timeout and every
request a deadline; at most `max_connections` are served at once; every malformed request gets
the Lambda API's JSON error with the matching status, and nothing a client sends can make the
server print a traceback or stop serving.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from localca import faults as fault_rules
from localca import functions, sigv4, wire
from localca.authority import Authority, load_or_create
from localca.config import Config, is_loopback
from localca.issuance import Outcome, Policy, handle
from localca.logs import JsonLog
from localca.replies import HttpError, Reply, aws_error, crash_payload
from localca.state import DirectoryLock, prepare
from localca.store import DynamoRecorder, IssuedStore
from localca.sts import StsLookup

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"
ADMIN_PREFIX = "/_localca/"
LOG_TAIL_BYTES = 4096
ADMIN_BODY_LIMIT = 64 * 1024
# A body up to this size is read and dropped when the request is refused anyway, so the
# connection stays usable and the client reads the answer instead of a reset.
DISCARD_LIMIT = 2 * wire.MAX_PAYLOAD_BYTES
LINGER_BYTES = 1024 * 1024
LINGER_SECONDS = 1.0
LOCK_STRIPES = 64

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Stats:
    FIELDS = (
        "invocations",
        "issued",
        "refused",
        "crashed",
        "throttled",
        "unavailable",
        "denied",
        "rejected",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.FIELDS, 0)
        self._open = 0
        self._running = 0

    def bump(self, field: str) -> None:
        with self._lock:
            self._counts[field] += 1

    def opened(self, delta: int) -> None:
        with self._lock:
            self._open += delta

    def running(self, delta: int) -> None:
        with self._lock:
            self._running += delta

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {**self._counts, "connections": self._open, "running": self._running}


class _NotJson(ValueError):
    pass


def _reject_constant(name: str) -> None:
    raise _NotJson(f"Non-standard token '{name}'")


def parse_event(payload: bytes) -> Any:
    """The payload as the Lambda service and runtime read it: strict UTF-8 JSON, empty = {}.

    Raises HttpError (400 InvalidRequestContentException) for what the service refuses, and
    ValueError for valid JSON the Python runtime cannot load (its Runtime.UnmarshalError)."""
    if not payload:
        return {}
    try:
        text = payload.decode("utf-8").removeprefix("\ufeff")
        return json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, _NotJson, RecursionError) as exc:
        detail = "nesting too deep" if isinstance(exc, RecursionError) else str(exc)
        raise HttpError(
            400,
            "InvalidRequestContentException",
            f"Could not parse request body into json: {detail}",
            close=False,
        ) from exc


class LocalCA:
    """Everything a request needs, shared by the handler threads."""

    def __init__(self, config: Config, clock: Clock, log: JsonLog) -> None:
        self.config = config
        self.clock = clock
        self.log = log
        self.faults = fault_rules.FaultPlan()
        self.stats = Stats()
        self.authority: Authority
        self.store: IssuedStore
        self.dynamo: DynamoRecorder | None = None
        self._lock: DirectoryLock | None = None
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self.sts = StsLookup(config.sts_endpoint) if config.sts_endpoint else None
        self.policy = Policy(
            max_lifetime_days=config.max_lifetime_days,
            extension_allowlist=config.extension_allowlist,
            internal_bucket=config.internal_bucket,
        )

    def open(self) -> None:
        """Lock the state dir, load (or create) the CA; StateError when broken or in use."""
        state_dir = self.config.state_dir
        prepare(state_dir)
        self._lock = DirectoryLock(state_dir)  # before anything is read or created
        try:
            self.authority, created = load_or_create(state_dir, self.clock())
            self.store = IssuedStore(state_dir)
        except BaseException:
            self.close()
            raise
        self.log(
            "ca_ready", created=created, state_dir=str(state_dir), issued_on_record=self.store.count
        )
        if self.config.dynamodb_endpoint:
            self.dynamo = DynamoRecorder(
                self.config.dynamodb_endpoint, self.config.dynamodb_table, self.config.region
            )

    def close(self) -> None:
        if hasattr(self, "store"):
            self.store.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def credentials_for(self, req: sigv4.SignedRequest) -> dict[str, str]:
        """The configured credentials, plus the request's temporary ones when the STS issued
        them and the request carries their session token (AWS refuses them otherwise)."""
        key = sigv4.access_key_id(req)
        known = self.config.credentials
        if self.sts is None or key is None or key in known or key in self.config.denied_credentials:
            return known
        found = self.sts.find(key)
        if found is None or req.header("x-amz-security-token") != found.session_token:
            return known
        self.log("sts_credentials", access_key_id=key, role_arn=found.role_arn)
        return {**known, key: found.secret_access_key}

    def read_csr_file(self, name: str) -> bytes | None:
        """`csrs/<name>` of the internal bucket: a file under --csr-dir, never outside it."""
        root = self.config.csr_dir
        if root is None:
            return None
        try:
            base = root.resolve()
            path = (base / name).resolve()
            if base not in path.parents or not path.is_file():
                return None
            return path.read_bytes()
        except (OSError, ValueError):  # a NUL byte, a name too long, an unreadable file
            return None

    def invoke(self, payload: bytes, request_id: str) -> tuple[Reply, list[str]]:
        """Run the function on a payload. HttpError (400) when it is not JSON: the service
        refuses that before any invocation."""
        lines: list[str] = []
        unloadable: ValueError | None = None
        event: Any = None
        try:
            event = parse_event(payload)
        except HttpError:
            raise
        except ValueError as exc:  # valid JSON that Python's json cannot load (huge integers)
            unloadable = exc
        self.stats.bump("invocations")
        self.stats.running(1)
        try:
            return self._run(event, unloadable, request_id, lines)
        finally:
            self.stats.running(-1)

    def _run(
        self, event: Any, unloadable: ValueError | None, request_id: str, lines: list[str]
    ) -> tuple[Reply, list[str]]:
        fault = self.faults.take()
        if fault is not None:
            reply = self._fault(fault, request_id)
            if reply is not None:
                return reply, lines
        if unloadable is not None:
            self.stats.bump("crashed")
            return self._function_error(
                {
                    "errorMessage": f"Unable to unmarshal input: {unloadable}",
                    "errorType": "Runtime.UnmarshalError",
                    "requestId": request_id,
                    "stackTrace": [],
                }
            ), lines
        try:
            outcome = self._issue(event, lines.append)
        except Exception as exc:  # noqa: BLE001 - any exception is a Lambda crash, by contract
            self.stats.bump("crashed")
            self.log(
                "invoke_crashed",
                level="warning",
                request_id=request_id,
                error_type=type(exc).__name__,
            )
            return self._function_error(crash_payload(exc, request_id)), lines
        self.stats.bump("refused" if outcome.refused else "issued")
        self.log(
            "invoke_done",
            request_id=request_id,
            outcome="refused" if outcome.refused else "issued",
            error=outcome.payload.get("error"),
            serial=outcome.issued.serial if outcome.issued else None,
        )
        return Reply(200, outcome.payload, self._ok_headers()), lines

    def _fault(self, fault: fault_rules.Fault, request_id: str) -> Reply | None:
        self.log("fault_applied", kind=fault.kind, request_id=request_id)
        if fault.kind == "delay":
            self.faults.sleep(fault.seconds)
            return None
        if fault.kind == "throttle":
            self.stats.bump("throttled")
            return aws_error(
                429,
                "TooManyRequestsException",
                "Rate Exceeded.",
                Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
                retryAfterSeconds="1",
            )
        if fault.kind == "unavailable":
            self.stats.bump("unavailable")
            return aws_error(
                500, "ServiceException", "Service is temporarily unavailable.", kind="Service"
            )
        if fault.kind == "crash":
            self.stats.bump("crashed")
            return self._function_error(
                {
                    "errorMessage": f"RequestId: {request_id} Error: "
                    "Runtime exited with error: signal: killed",
                    "errorType": "Runtime.ExitError",
                }
            )
        self.stats.bump("refused")
        return Reply(200, {"error": fault.message}, self._ok_headers())

    def _issue(self, event: Any, note: Callable[[str], None]) -> Outcome:
        # Decide-and-record under a lock per common name (striped): two concurrent requests
        # with the same name and key must not both pass the key-reuse check, while a slow
        # request (a 6 MB SAN list takes seconds) holds up only its own name's stripe.
        # Only a string name can pass the table checks and be recorded.
        name = event.get("common_name") if isinstance(event, dict) else None
        with self._stripes[hash(name if isinstance(name, str) else "") % len(self._stripes)]:
            outcome = handle(
                event,
                self.authority,
                self.store,
                self.clock(),
                self.policy,
                self.read_csr_file,
                note,
            )
            if outcome.issued is not None:
                # The table first, as upstream's only record: if it fails, the invocation
                # crashes and nothing is on record, so the key is not burnt.
                if self.dynamo is not None:
                    self.dynamo.record(outcome.issued)
                self.store.record(outcome.issued)
        return outcome

    def _ok_headers(self) -> dict[str, str]:
        return {"X-Amz-Executed-Version": "$LATEST"}

    def _function_error(self, body: dict[str, Any]) -> Reply:
        return Reply(200, body, {**self._ok_headers(), "X-Amz-Function-Error": "Unhandled"})


_HTTP_ERROR_CODES = {
    400: "BadRequestException",
    408: "RequestTimeoutException",
    414: "RequestURITooLongException",
    431: "RequestHeaderFieldsTooLargeException",
    501: "NotImplementedException",
    505: "HTTPVersionNotSupportedException",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True
    server_version = "local-ca"
    sys_version = ""
    app: LocalCA  # set on the subclass made per server
    limits: wire.Limits

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced: every read goes through the bounded reader
        self.reader = wire.BoundedReader(self.connection, self.limits)
        self.rfile = self.reader  # type: ignore[assignment]
        self._expect_continue = False
        self._unread_body = False
        self._responding = False
        self.app.stats.opened(1)

    def finish(self) -> None:
        try:
            super().finish()
            if self._unread_body:
                self._linger()
        except OSError:
            pass
        finally:
            self.app.stats.opened(-1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # requests are logged as JSON by LocalCA

    def handle_expect_100(self) -> bool:
        self._expect_continue = True  # "100 Continue" is sent only once the body is wanted
        return True

    def handle_one_request(self) -> None:
        self.close_connection = True
        self._expect_continue = False
        self._responding = False
        # What parse_request would set, for an answer sent before it runs (414, 408).
        self.command, self.requestline, self.request_version = "", "", "HTTP/1.1"
        try:
            if not self.reader.wait_for_request():
                return
            self.raw_requestline = self.reader.readline(wire.MAX_REQUEST_LINE + 1)
            if len(self.raw_requestline) > wire.MAX_REQUEST_LINE:
                raise HttpError(
                    414, _HTTP_ERROR_CODES[414], "Request line is longer than 8192 bytes"
                )
            if not self.raw_requestline or not self.parse_request():
                return
            if self.request_version == "HTTP/0.9":
                return  # no status line to answer with
            self._serve(str(uuid.uuid4()))
        except TimeoutError:
            self._fail(HttpError(408, _HTTP_ERROR_CODES[408], "Request timed out"))
        except HttpError as error:
            self._fail(error)
        except OSError:
            self.close_connection = True  # the peer went away: nothing left to answer

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # parse_request's own refusals (bad request line, version, headers), as JSON.
        name = _HTTP_ERROR_CODES.get(code, "BadRequestException")
        self._fail(HttpError(code, name, message or HTTPStatus(code).phrase))

    def _fail(self, error: HttpError) -> None:
        if self._responding:  # failed while answering (a write timeout): nothing to add
            self.close_connection = True
            return
        self.app.stats.bump("rejected")
        self.app.log("request_rejected", level="warning", status=error.status, code=error.code)
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.1"
        self.close_connection = self.close_connection or error.close
        if error.close and not self._expect_continue:
            self._unread_body = True
        try:
            self._send(error.reply(), str(uuid.uuid4()))
        except OSError:
            self.close_connection = True

    def _send(self, reply: Reply, request_id: str) -> None:
        self._responding = True
        self.connection.settimeout(self.limits.write_seconds)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)

    def _linger(self) -> None:
        # Half-close, then drain what the client is still sending, briefly: closing with
        # unread input would reset the connection and could destroy the answer in flight.
        self.connection.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        drained = 0
        while drained < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
            self.connection.settimeout(left)
            chunk = self.connection.recv(65536)
            if not chunk:
                return
            drained += len(chunk)

    def _serve(self, request_id: str) -> None:
        try:
            parts = urlsplit(self.path)
        except ValueError as exc:
            raise HttpError(400, "BadRequestException", "Request target is malformed") from exc
        try:
            if parts.path.startswith(ADMIN_PREFIX):
                reply = self._admin(parts.path[len(ADMIN_PREFIX) :])
            elif (
                self.command == "POST"
                and parts.path.startswith(INVOKE_PREFIX)
                and parts.path.endswith(INVOKE_SUFFIX)
                and len(parts.path) > len(INVOKE_PREFIX) + len(INVOKE_SUFFIX)
            ):
                reply = self._invoke(parts.path, parts.query, request_id)
            else:
                self._drop_body(ADMIN_BODY_LIMIT)
                reply = aws_error(404, "UnknownOperationException", "Unknown operation")
        except (HttpError, TimeoutError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - the service never drops a connection silently
            self.app.log("server_error", level="error", error=repr(exc))
            self.close_connection = True
            reply = aws_error(500, "ServiceException", "Internal error", kind="Service")
        self._send(reply, request_id)

    def _length(self) -> int | None:
        return wire.content_length(self.headers)

    def _continue(self) -> None:
        if self._expect_continue:
            self._expect_continue = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _read_body(self, limit: int) -> bytes:
        length = self._length()
        if length is not None and length > limit:
            error = wire.too_large(limit)
            error.close = self._refuse_unread(length)
            raise error
        self._continue()
        if length is None:
            return wire.read_chunked(self.reader, limit)
        return wire.read_sized(self.reader, length)

    def _refuse_unread(self, length: int | None) -> bool:
        """Before refusing a request whose body was not read: drop a body small enough to keep
        the connection, else mark it to be closed (after a short linger). True: closing."""
        if length is not None and length <= DISCARD_LIMIT and not self._expect_continue:
            self.reader.discard(length)
            return False
        self.close_connection = True
        self._unread_body = not self._expect_continue
        return True

    def _drop_body(self, limit: int) -> None:
        length = self._length()
        if length is not None and length <= limit and not self._expect_continue:
            self.reader.discard(length)
        elif length != 0:
            self._refuse_unread(None)

    def _headers(self) -> dict[str, list[str]]:
        headers: dict[str, list[str]] = {}
        message: Message = self.headers
        for name, value in message.items():
            headers.setdefault(name.lower(), []).append(value)
        return headers

    def _invoke(self, path: str, query: str, request_id: str) -> Reply:
        app = self.app
        headers = self._headers()
        head = sigv4.SignedRequest(self.command, path, query, headers, b"")
        checked = sigv4.check_headers(
            head,
            app.credentials_for(head),
            app.config.denied_credentials,
            app.config.region,
            "lambda",
            app.clock(),
        )
        if isinstance(checked, sigv4.AuthFailure):
            self._drop_body(ADMIN_BODY_LIMIT)  # never read an unauthenticated body in full
            return self._denied(checked, request_id)
        body = self._read_body(wire.MAX_PAYLOAD_BYTES)
        verdict = sigv4.check_signature(
            sigv4.SignedRequest(self.command, path, query, headers, body), checked
        )
        if isinstance(verdict, sigv4.AuthFailure):
            return self._denied(verdict, request_id)
        raw_name = path[len(INVOKE_PREFIX) : -len(INVOKE_SUFFIX)]
        if not verdict.authorised:
            app.stats.bump("denied")
            arn = (
                f"arn:aws:lambda:{app.config.region}:{app.config.account_id}:function:"
                + (unquote(raw_name).split(":")[-1])
            )
            return aws_error(
                403,
                "AccessDeniedException",
                f"User: arn:aws:iam::{app.config.account_id}:user/"
                f"{verdict.access_key_id} is not authorized to perform: "
                f"lambda:InvokeFunction on resource: {arn} because no "
                "identity-based policy allows the lambda:InvokeFunction action",
            )
        missing = functions.resolve(raw_name, query, app.config)
        if missing is not None:
            return missing.reply()
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            return Reply(204)
        if invocation_type not in ("RequestResponse", "Event"):
            return aws_error(
                400,
                "InvalidParameterValueException",
                f"Unsupported invocation type {invocation_type}",
            )
        started = time.perf_counter()
        try:
            reply, lines = app.invoke(body, request_id)
        except HttpError as error:  # the payload is not JSON
            return error.reply()
        if invocation_type == "Event" and reply.status == 200:
            return Reply(202)
        if self.headers.get("X-Amz-Log-Type") == "Tail" and reply.status == 200:
            millis = (time.perf_counter() - started) * 1000
            text = "".join(
                [f"START RequestId: {request_id} Version: $LATEST\n"]
                + [line + "\n" for line in lines]
                + [
                    f"END RequestId: {request_id}\n",
                    f"REPORT RequestId: {request_id}\tDuration: {millis:.2f} ms\n",
                ]
            ).encode("utf-8", "backslashreplace")[-LOG_TAIL_BYTES:]
            reply.headers["X-Amz-Log-Result"] = base64.b64encode(text).decode()
        return reply

    def _denied(self, failure: sigv4.AuthFailure, request_id: str) -> Reply:
        self.app.stats.bump("denied")
        self.app.log("auth_failed", level="warning", code=failure.code, request_id=request_id)
        return aws_error(failure.status, failure.code, failure.message)

    def _admin(self, route: str) -> Reply:
        app = self.app
        # The host itself: loopback, or the address the CA is bound to (a --allow-remote CA on
        # a node's bridge is reached from its own host at that address; Pods have others).
        client = self.client_address[0]
        bound = self.server.server_address
        own = bound[0] if isinstance(bound, tuple) else None
        if not (is_loopback(client) or client == own):
            self._drop_body(ADMIN_BODY_LIMIT)
            return Reply(403, {"error": "admin endpoints answer clients on this host only"})
        if route == "faults" and self.command == "POST":
            try:
                raw = json.loads(self._read_body(ADMIN_BODY_LIMIT) or b"null")
                items = raw if isinstance(raw, list) else [raw]
                parsed = [fault_rules.parse(item) for item in items]
            except (ValueError, RecursionError, fault_rules.FaultError) as exc:
                return Reply(400, {"error": str(exc)})
            for fault in parsed:
                app.faults.add(fault)
                app.log("fault_added", kind=fault.kind, count=fault.count)
            return Reply(200, {"pending": app.faults.pending()})
        self._drop_body(ADMIN_BODY_LIMIT)
        reading = self.command in ("GET", "HEAD")
        if route == "stats" and reading:
            return Reply(200, app.stats.snapshot())
        if route == "health" and reading:
            return Reply(200, {"status": "ok", "function_name": app.config.function_name})
        if route == "faults" and self.command == "DELETE":
            app.faults.clear()
            app.log("faults_cleared")
            return Reply(200, {"pending": []})
        if route == "faults" and reading:
            return Reply(200, {"pending": app.faults.pending()})
        return Reply(404, {"error": f"no admin route {self.command} /_localca/{route}"})


class _HttpServer(ThreadingHTTPServer):
    """Threads per connection, at most `max_connections` at once; more wait in the backlog."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[_Handler],
        log: JsonLog,
        max_connections: int,
    ) -> None:
        self.log = log
        self.stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self._slots.acquire(timeout=0.1):
            if self.stopping.is_set():
                self.shutdown_request(request)
                return
        try:
            threading.Thread(
                target=self._serve_one, args=(request, client_address), daemon=True
            ).start()
        except RuntimeError:  # no thread could be started: refuse this connection only
            self._slots.release()
            self.shutdown_request(request)

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Defense in depth: one log line, never a traceback on stderr.
        self.log("connection_error", level="error", error=repr(sys.exc_info()[1]))


class _HttpServerV6(_HttpServer):
    address_family = socket.AF_INET6


class LocalCAServer:
    """The local CA in-process: `start()` returns the endpoint URL; `stop()` ends it."""

    def __init__(
        self,
        config: Config,
        clock: Clock = _utcnow,
        log: JsonLog | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.limits = wire.Limits(
            idle_seconds=config.idle_timeout, request_seconds=config.request_timeout
        )
        self.app = LocalCA(config, clock, log or JsonLog())
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the local CA is not running: call start() first")
        return int(self._httpd.server_address[1])

    @property
    def endpoint_url(self) -> str:
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    def start(self) -> str:
        """Serve; OSError when the address is unusable, StateError for a broken state dir."""
        handler = type("Handler", (_Handler,), {"app": self.app, "limits": self.limits})
        server_class = _HttpServerV6 if ":" in self.config.host else _HttpServer
        httpd = server_class(
            (self.config.host, self.config.port),
            handler,
            self.app.log,
            self.config.max_connections,
        )
        try:
            self.app.open()
        except BaseException:
            httpd.server_close()
            raise
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name="local-ca-http",
        )
        self._thread.start()
        self.app.log(
            "listening", endpoint_url=self.endpoint_url, function_name=self.config.function_name
        )
        return self.endpoint_url

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        self.app.close()
        self.app.log("stopped")

    def __enter__(self) -> LocalCAServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def default_state_dir() -> Path:
    return Path.home() / ".cache" / "lambda-client-certs" / "local-ca"
