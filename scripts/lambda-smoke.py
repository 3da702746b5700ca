#!/usr/bin/env python3
"""Runs a Lambda bootstrap binary against a stand-in Lambda Runtime API on loopback.

The stand-in serves `GET /2018-06-01/runtime/invocation/next`: with --event FILE it hands that
event to the function once and records the response the function posts back; otherwise it only
records that the function asked (its configuration was read and its clients were built, since
both happen before the first poll). The binary runs through `--runner` (e.g. qemu-aarch64-static)
and is stopped once the stand-in has what it waits for.

Usage: lambda-smoke.py [--runner CMD] [--event FILE] [--expect-status N] [--expect-exit-error TEXT]
                       [--expect-output TEXT] [--timeout S] BINARY [VAR=VALUE ...]
Exit status 0 when every expectation held; the function's output is printed either way.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class Stub:
    def __init__(self, event):
        self.event = event
        self.polls = 0
        self.response = None
        self.error = None
        self.done = threading.Event()
        self.handed_out = False


def handler_for(stub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != f"{PREFIX}/invocation/next":
                self.send_error(404)
                return
            stub.polls += 1
            if stub.event is None or stub.handed_out:
                # Nothing (more) to hand out: what we waited for has happened.
                stub.done.set()
                time.sleep(30)  # hold the poll open, as Lambda does, until we stop the binary
                return
            stub.handed_out = True
            body = json.dumps(stub.event).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Lambda-Runtime-Aws-Request-Id", "smoke-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:000000000000:function:smoke")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            if self.path == f"{PREFIX}/invocation/smoke-1/response":
                stub.response = body
            else:
                stub.error = f"{self.path}: {body}"
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            stub.done.set()

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runner", default="")
    parser.add_argument("--event")
    parser.add_argument("--expect-status", type=int)
    parser.add_argument("--expect-exit-error")
    parser.add_argument("--expect-output", help="text the function must print (it is given until --timeout)")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("binary")
    parser.add_argument("env", nargs="*")
    args = parser.parse_args()

    event = None
    if args.event:
        with open(args.event, encoding="utf-8") as f:
            event = json.load(f)
    stub = Stub(event)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(stub))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "smoke",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/smoke",
        "AWS_LAMBDA_LOG_STREAM_NAME": "smoke",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_REGION": "eu-west-1",
    }
    for pair in args.env:
        key, _, value = pair.partition("=")
        env[key] = value
    command = shlex.split(args.runner) + [args.binary]
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    # Read the output as it comes, so an expected line can end the wait early.
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()

    def seen():
        return args.expect_output is None or any(args.expect_output in line for line in list(lines))

    exited = None
    while time.monotonic() - started < args.timeout:
        if stub.done.wait(0.2) and seen():
            break
        exited = proc.poll()
        if exited is not None:
            break
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    reader.join(5)
    output = "".join(lines)
    elapsed = time.monotonic() - started
    server.shutdown()
    print(output.rstrip())

    failures = []
    if args.expect_exit_error is not None:
        if exited is None or exited == 0:
            failures.append(f"expected the function to stop at start-up, it did not (exit {exited})")
        if args.expect_exit_error not in output:
            failures.append(f"expected {args.expect_exit_error!r} in its output")
        if stub.polls:
            failures.append("it polled for events despite a bad configuration")
    else:
        if stub.polls == 0:
            failures.append(f"it never polled the Runtime API (exit {exited}, {elapsed:.1f}s)")
        if args.event:
            if stub.error:
                failures.append(f"it reported an error: {stub.error}")
            elif stub.response is None:
                failures.append("it never posted a response")
            elif args.expect_status is not None:
                status = json.loads(stub.response).get("statusCode")
                if status != args.expect_status:
                    failures.append(f"status {status}, expected {args.expect_status}: {stub.response}")
        if not seen():
            failures.append(f"expected {args.expect_output!r} in its output")
        # With AWS_LAMBDA_LOG_FORMAT=JSON every line is JSON: log records and EMF metrics alike.
        for line in output.splitlines():
            try:
                json.loads(line)
            except ValueError:
                failures.append(f"not a JSON line: {line[:200]}")
                break
    for failure in failures:
        print(f"FAIL {args.binary}: {failure}", file=sys.stderr)
    if not failures:
        detail = f"response {stub.response[:120]}" if stub.response else f"{stub.polls} poll(s)"
        print(f"ok {os.path.basename(os.path.dirname(args.binary)) or args.binary}: {detail} in {elapsed:.1f}s", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
