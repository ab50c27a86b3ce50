"""The HTTP shell: Lambda's Invoke REST API on loopback, SigV4 checks, faults and stats."""

from __future__ import annotations

import base64
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from localca import faults as fault_rules
from localca import sigv4
from localca.authority import Authority, load_or_create
from localca.config import Config, is_loopback
from localca.issuance import CsrFile, Outcome, Policy, handle
from localca.logs import JsonLog
from localca.store import DynamoRecorder, IssuedStore
from localca.sts import StsLookup

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"
ADMIN_PREFIX = "/_localca/"
LOG_TAIL_BYTES = 4096

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Stats:
    FIELDS = ("invocations", "issued", "refused", "crashed", "throttled", "unavailable", "denied")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.FIELDS, 0)

    def bump(self, field: str) -> None:
        with self._lock:
            self._counts[field] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class Reply:
    """An HTTP answer: status, headers, JSON body (or none)."""

    def __init__(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.body = b"" if body is None else json.dumps(body).encode()
        self.headers = {"Content-Type": "application/json", **(headers or {})}


def aws_error(status: int, code: str, message: str, kind: str = "User", **extra: Any) -> Reply:
    # botocore takes the code from x-amzn-ErrorType and the message from the body.
    body = {"Type": kind, "message": message, "Message": message, **extra}
    return Reply(status, body, {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/"})


def crash_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(frames),
    }


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
        self.sts = StsLookup(config.sts_endpoint) if config.sts_endpoint else None
        self.policy = Policy(
            max_lifetime_days=config.max_lifetime_days,
            extension_allowlist=config.extension_allowlist,
            internal_bucket=config.internal_bucket,
        )

    def open(self) -> None:
        self.authority, created = load_or_create(self.config.state_dir, self.clock())
        self.store = IssuedStore(self.config.state_dir)
        self.log(
            "ca_ready",
            created=created,
            state_dir=str(self.config.state_dir),
            issued_on_record=self.store.count,
        )
        if self.config.dynamodb_endpoint:
            self.dynamo = DynamoRecorder(
                self.config.dynamodb_endpoint, self.config.dynamodb_table, self.config.region
            )

    def function_arn(self, name: str) -> str:
        c = self.config
        return f"arn:aws:lambda:{c.region}:{c.account_id}:function:{name}"

    def resolve(self, raw: str, query: str) -> str | None:
        """The configured function if `raw` names it (plain name, full or partial ARN)."""
        name = unquote(raw)
        qualifier = None
        parts = name.split(":")
        if name.startswith("arn:"):
            if len(parts) not in (7, 8) or parts[5] != "function":
                return None
            if parts[3] != self.config.region or parts[4] != self.config.account_id:
                return None
            name, qualifier = parts[6], (parts[7] if len(parts) == 8 else None)
        elif len(parts) in (3, 4) and parts[1] == "function":
            if parts[0] != self.config.account_id:
                return None
            name, qualifier = parts[2], (parts[3] if len(parts) == 4 else None)
        elif len(parts) == 2:
            name, qualifier = parts
        elif len(parts) != 1:
            return None
        query_qualifier = parse_qs(query).get("Qualifier", [None])[0]
        for q in (qualifier, query_qualifier):
            if q not in (None, "$LATEST"):
                return None
        return name if name == self.config.function_name else None

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

    def read_csr_file(self, name: str) -> CsrFile | None:
        root = self.config.csr_dir
        if root is None:
            return None
        base = root.resolve()
        path = (base / name).resolve()
        if base not in path.parents or not path.is_file():
            return None
        return CsrFile(path.read_bytes(), datetime.fromtimestamp(path.stat().st_mtime, UTC))

    def invoke(self, payload: bytes, request_id: str) -> tuple[Reply, list[str]]:
        lines: list[str] = []
        self.stats.bump("invocations")
        fault = self.faults.take()
        if fault is not None:
            self.log("fault_applied", kind=fault.kind, request_id=request_id)
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            elif fault.kind == "throttle":
                self.stats.bump("throttled")
                return aws_error(
                    429,
                    "TooManyRequestsException",
                    "Rate Exceeded.",
                    Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
                    retryAfterSeconds="1",
                ), lines
            elif fault.kind == "unavailable":
                self.stats.bump("unavailable")
                return aws_error(
                    500, "ServiceException", "Service is temporarily unavailable.", kind="Service"
                ), lines
            elif fault.kind == "crash":
                self.stats.bump("crashed")
                return self._function_error(
                    {
                        "errorMessage": f"RequestId: {request_id} Error: "
                        "Runtime exited with error: signal: killed",
                        "errorType": "Runtime.ExitError",
                    }
                ), lines
            else:
                self.stats.bump("refused")
                return Reply(200, {"error": fault.message}, self._ok_headers()), lines
        try:
            event = json.loads(payload) if payload.strip() else {}
        except ValueError as exc:
            return aws_error(
                400,
                "InvalidRequestContentException",
                f"Could not parse request body into json: {exc}",
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

    def _issue(self, event: Any, note: Callable[[str], None]) -> Outcome:
        # One lock around decide-and-record: two concurrent requests with the same key must
        # not both pass the key-reuse check.
        with self.store.lock:
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
                self.store.record(outcome.issued)
                if self.dynamo is not None:
                    self.dynamo.record(outcome.issued)
        return outcome

    def _ok_headers(self) -> dict[str, str]:
        return {"X-Amz-Executed-Version": "$LATEST"}

    def _function_error(self, body: dict[str, Any]) -> Reply:
        return Reply(200, body, {**self._ok_headers(), "X-Amz-Function-Error": "Unhandled"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True
    server_version = "local-ca"
    sys_version = ""
    app: LocalCA  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # requests are logged as JSON by LocalCA

    def _send(self, reply: Reply, request_id: str) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        request_id = str(uuid.uuid4())
        body = self._body()
        parts = urlsplit(self.path)
        try:
            if parts.path.startswith(ADMIN_PREFIX):
                reply = self._admin(parts.path[len(ADMIN_PREFIX) :], body)
            elif (
                self.command == "POST"
                and parts.path.startswith(INVOKE_PREFIX)
                and parts.path.endswith(INVOKE_SUFFIX)
            ):
                reply = self._invoke(parts.path, parts.query, body, request_id)
            else:
                reply = aws_error(404, "UnknownOperationException", "Unknown operation")
        except Exception as exc:  # noqa: BLE001 - the service never drops a connection silently
            self.app.log("server_error", level="error", error=repr(exc))
            reply = aws_error(500, "ServiceException", "Internal error", kind="Service")
        try:
            self._send(reply, request_id)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a read timeout during a delay fault): nothing left to answer.
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = _dispatch  # noqa: N815 - stdlib naming

    def _invoke(self, path: str, query: str, body: bytes, request_id: str) -> Reply:
        app = self.app
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        signed = sigv4.SignedRequest(self.command, path, query, headers, body)
        verdict = sigv4.verify(
            signed,
            app.credentials_for(signed),
            app.config.denied_credentials,
            app.config.region,
            "lambda",
            app.clock(),
        )
        raw_name = path[len(INVOKE_PREFIX) : -len(INVOKE_SUFFIX)]
        if isinstance(verdict, sigv4.AuthFailure):
            app.stats.bump("denied")
            app.log("auth_failed", level="warning", code=verdict.code, request_id=request_id)
            return aws_error(verdict.status, verdict.code, verdict.message)
        if not verdict.authorised:
            app.stats.bump("denied")
            arn = app.function_arn(unquote(raw_name).split(":")[-1])
            return aws_error(
                403,
                "AccessDeniedException",
                f"User: arn:aws:iam::{app.config.account_id}:user/"
                f"{verdict.access_key_id} is not authorized to perform: "
                f"lambda:InvokeFunction on resource: {arn} because no "
                "identity-based policy allows the lambda:InvokeFunction action",
            )
        name = app.resolve(raw_name, query)
        if name is None:
            return aws_error(
                404,
                "ResourceNotFoundException",
                f"Function not found: {app.function_arn(unquote(raw_name))}",
            )
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
        reply, lines = app.invoke(body, request_id)
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
            ).encode()[-LOG_TAIL_BYTES:]
            reply.headers["X-Amz-Log-Result"] = base64.b64encode(text).decode()
        return reply

    def _admin(self, route: str, body: bytes) -> Reply:
        app = self.app
        # The host itself: loopback, or the address the CA is bound to (a --allow-remote CA on
        # a node's bridge is reached from its own host at that address; Pods have others).
        client = self.client_address[0]
        bound = self.server.server_address
        own = bound[0] if isinstance(bound, tuple) else None
        if not (is_loopback(client) or client == own):
            return Reply(403, {"error": "admin endpoints answer clients on this host only"})
        if route == "stats" and self.command == "GET":
            return Reply(200, app.stats.snapshot())
        if route == "health" and self.command == "GET":
            return Reply(200, {"status": "ok", "function_name": app.config.function_name})
        if route == "faults":
            if self.command == "DELETE":
                app.faults.clear()
                app.log("faults_cleared")
                return Reply(200, {"pending": []})
            if self.command == "GET":
                return Reply(200, {"pending": app.faults.pending()})
            if self.command == "POST":
                try:
                    raw = json.loads(body or b"null")
                    items = raw if isinstance(raw, list) else [raw]
                    parsed = [fault_rules.parse(item) for item in items]
                except (ValueError, fault_rules.FaultError) as exc:
                    return Reply(400, {"error": str(exc)})
                for fault in parsed:
                    app.faults.add(fault)
                    app.log("fault_added", kind=fault.kind, count=fault.count)
                return Reply(200, {"pending": app.faults.pending()})
        return Reply(404, {"error": f"no admin route {self.command} /_localca/{route}"})


class LocalCAServer:
    """The local CA in-process: `start()` returns the endpoint URL; `stop()` ends it."""

    def __init__(self, config: Config, clock: Clock = _utcnow, log: JsonLog | None = None) -> None:
        config.validate()
        self.config = config
        self.app = LocalCA(config, clock, log or JsonLog())
        self._httpd: ThreadingHTTPServer | None = None
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
        self.app.open()
        handler = type("Handler", (_Handler,), {"app": self.app})
        server_class = ThreadingHTTPServer
        if ":" in self.config.host:
            import socket

            server_class = type(
                "V6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6}
            )
        httpd = server_class((self.config.host, self.config.port), handler)
        httpd.daemon_threads = True
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
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd = None
        self.app.store.close()
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
