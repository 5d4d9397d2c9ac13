"""The Python agent against a real `flameshift serve` (the binary named by
FLAMESHIFT_BIN, else target/debug/flameshift): each scenario runs in a
process of its own (python/tests/scenarios.py), the integrations in this
one with real Flask, Django and Starlette applications.

    FLAMESHIFT_BIN=target/debug/flameshift python3 -m unittest discover -s python/tests -v

The smoke scenario alone (no framework needed) is what runs on every
CPython version: `python3.13 -m unittest test_agent.Smoke`.
"""

import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FLAMESHIFT = os.environ.get("FLAMESHIFT_BIN", os.path.join(ROOT, "target", "debug", "flameshift"))


class Serve:
    """`flameshift serve` on a free port over a temporary data directory."""

    def __init__(self, *args):
        self.dir = tempfile.TemporaryDirectory()
        self.process = subprocess.Popen(
            [FLAMESHIFT, "serve", "--listen", "127.0.0.1:0", "--data", self.dir.name, "--bucket", "1s", *args],
            stderr=subprocess.PIPE, text=True,
        )
        for line in self.process.stderr:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        else:
            raise RuntimeError("flameshift serve did not start")

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return json.load(response)

    def close(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self.dir.cleanup()


def scenario(name, url, arg="0", timeout=120, env=None):
    """Runs a scenario (with `env` added to the environment); its JSON
    line and its standard error."""
    done = subprocess.run([sys.executable, os.path.join(HERE, "scenarios.py"), name, url, str(arg)],
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **(env or {})))
    if done.returncode != 0:
        raise AssertionError(f"scenario {name} failed ({done.returncode}): {done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def function_shares(serve, service):
    listing = serve.get(f"/api/v1/functions?service={service}&deploy=v1")
    return {re.sub(r" \(.*\)$", "", f["name"]): f["self_value"] for f in listing["functions"]}, listing


class Smoke(unittest.TestCase):
    """What every supported CPython version runs."""

    def test_requests_are_counted_and_stacks_carry_qualified_names_and_files(self):
        # Each thread reads its own stack in its signal handler where the
        # agent has the version's layout (checked against the interpreter
        # when it started), else a sampling thread reads them with py-spy.
        self.check_smoke({}, "flameshift", "py-spy")

    def test_a_sampling_thread_reads_the_same_stacks_where_asked(self):
        # FLAMESHIFT_STACK_READER=thread: the sampling thread, with the
        # agent's own reader where it has the layout (docs/python.md).
        self.check_smoke({"FLAMESHIFT_STACK_READER": "thread"}, "flameshift-thread", "py-spy")

    def check_smoke(self, env, own_reader, else_reader):
        serve = Serve()
        try:
            seen, _ = scenario("smoke", serve.url, env=env)
            self.assertTrue(seen["started"], seen)
            count, cost = seen["requests"]["GET /a"]
            self.assertGreater(count, 10)
            self.assertGreater(cost, 0)
            functions = serve.get("/api/v1/functions?service=smoke%d%d&deploy=v1&limit=1000"
                                  % tuple(seen["version"]))["functions"]
            inclusive = {f["name"]: f["inclusive_value"] for f in functions}
            self.assertGreater(inclusive.get("a (scenarios.py)", 0), 0, inclusive)
            # Qualified names from 3.11 (`co_qualname`); the bare name
            # before (docs/python.md, "Versions").
            heavy = "smoke.<locals>.Work.heavy" if seen["version"] >= [3, 11] else "heavy"
            self.assertGreater(inclusive.get(f"{heavy} (scenarios.py)", 0), 0, inclusive)
            # Frames in generator and coroutine objects, off the thread's
            # frame stack, are followed.
            self.assertGreater(inclusive.get("produced (scenarios.py)", 0), 0, inclusive)
            self.assertGreater(inclusive.get("awaited (scenarios.py)", 0), 0, inclusive)
            self.assertGreater(inclusive.get("drive (scenarios.py)", 0), 0, inclusive)
            reads = seen["stats"]["stack_reads"]
            self.assertGreater(reads["running"], 100, reads)
            expected = own_reader if [3, 9] <= seen["version"] <= [3, 13] else else_reader
            self.assertEqual(seen["stats"]["stack_reader"], expected, seen["stats"])
        finally:
            serve.close()


class Agent(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.serve = Serve()

    @classmethod
    def tearDownClass(cls):
        cls.serve.close()

    def test_two_functions_whose_cpu_stands_2_to_1_come_out_near_2_to_1(self):
        # Unbiased (docs/python.md, "Accuracy"), so what spreads the ratio
        # is the count of samples: 20 s at 999 Hz hold ~16,000 here, whose
        # binomial spread is 1.7% (one standard deviation) on a 2:1 ratio,
        # so 5% is 2.9 of them.
        scenario("attribution", self.serve.url, 20)
        values, listing = function_shares(self.serve, "ratio")
        ratio = values["a"] / values["b"]
        self.assertGreater(listing["samples"], 10000, listing["samples"])
        self.assertLess(abs(ratio - 2) / 2, 0.05, f"a/b = {ratio:.3f}")

    def test_a_forked_child_runs_its_own_agent_and_ships_at_stop(self):
        seen, _ = scenario("fork", self.serve.url, 200)
        child = seen["child"]
        self.assertEqual(seen["status"], 0)
        self.assertNotEqual(child["pid"], seen["parent"])
        self.assertTrue(child["running"])
        self.assertEqual(child["requests"]["GET /a"][0], 200)
        deploys = self.serve.get("/api/v1/services/forked/deploys")["deploys"]
        self.assertEqual(sum(d["requests"] for d in deploys), 200, deploys)
        values, _ = function_shares(self.serve, "forked")
        self.assertGreater(values.get("a", 0), 0, f"the child's stacks: {values}")
        # The child's samples carry the endpoint its requests entered (a
        # thread id cached in the parent would label none).
        labelled = self.serve.get("/api/v1/functions?service=forked&deploy=v1&endpoint=GET%20%2Fa")
        self.assertGreater(labelled["samples"], 0, labelled)

    def test_uwsgi_workers_forked_from_c_run_their_own_agents_and_ship_at_exit(self):
        # uWSGI's master loads the app (and starts the agent) once and
        # forks its workers from C: no os.register_at_fork hook runs
        # there. Each worker must still start its own agent (at its first
        # request), count every request, and ship what it holds when the
        # master stops it; a signal sent to a worker must reach uWSGI's
        # handler on its main thread, never an agent's thread.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log = self.enterContext(tempfile.TemporaryFile(mode="w+"))
        master = subprocess.Popen(
            ["uwsgi", "--master", "--processes", "2", "--http", f"127.0.0.1:{port}",
             "--wsgi-file", os.path.join(HERE, "uwsgi_app.py"), "--die-on-term", "--disable-logging"],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, ANALYZER=self.serve.url),
        )
        try:
            pids = []
            deadline = time.time() + 60
            while len(pids) < 200 and time.time() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                        pids.append(response.read())
                except OSError:
                    time.sleep(0.1)
            self.assertEqual(len(pids), 200)
        finally:
            master.send_signal(signal.SIGTERM)
            master.wait(timeout=60)
        log.seek(0)
        output = log.read()
        self.assertNotIn("panicked", output)
        self.assertIn("goodbye to uWSGI", output)
        self.assertEqual(len(set(pids)), 2, "both workers served")
        deploys = self.serve.get("/api/v1/services/uwsgi/deploys")["deploys"]
        self.assertEqual(sum(d["requests"] for d in deploys), 200, deploys)
        values, _ = function_shares(self.serve, "uwsgi")
        self.assertGreater(values.get("burn", 0), 0, f"the workers' stacks: {values}")

    def test_a_dead_analyzer_never_holds_up_a_request(self):
        seen, _ = scenario("unreachable", "http://127.0.0.1:9", 4)
        self.assertGreater(seen["served"], 100)
        self.assertGreater(seen["stats"]["failures"], 0, seen)
        self.assertEqual(seen["stats"]["uploads"], 0, seen)
        self.assertLess(seen["slowest"], 0.1, seen)
        self.assertLess(seen["stop_seconds"], 30, seen)

    def test_a_refused_token_is_one_warning(self):
        guarded = Serve("--token", "right")
        try:
            seen, stderr = scenario("refused", guarded.url, 4)
        finally:
            guarded.close()
        warnings = [line for line in stderr.splitlines() if "refused" in line]
        self.assertEqual(len(warnings), 1, stderr)
        self.assertIn("401", warnings[0])
        self.assertGreater(seen["served"], 100)
        self.assertEqual(seen["stats"]["uploads"], 0, seen)


def burn(units):
    x = 1
    for _ in range(units * 1000):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x


class Integrations(unittest.TestCase):
    """Endpoints named by each framework's route template; costs read per
    request (per step under ASGI)."""

    @classmethod
    def setUpClass(cls):
        import flameshift

        # Requests only, never uploaded in these tests: nothing is cut
        # from the statistics while they run.
        assert flameshift.start(service="integrations", deploy="v1", frequency=0, upload_interval=3600)

    @classmethod
    def tearDownClass(cls):
        import flameshift

        flameshift.stop()

    def delta(self, action):
        import flameshift

        before = flameshift.requests()
        action()
        after = flameshift.requests()
        return {e: (after[e][0] - before.get(e, (0, 0))[0], after[e][1] - before.get(e, (0, 0))[1])
                for e in after if after[e] != before.get(e)}

    def test_flask_routes_are_rule_templates_and_unmatched_paths_are_one_endpoint(self):
        from flask import Flask

        import flameshift

        app = flameshift.flask.instrument(Flask("shop"))
        app.add_url_rule("/users/<int:uid>", "user", lambda uid: str(burn(1)))
        client = app.test_client()

        def get(path):
            response = client.get(path)
            response.close()  # a server closes the body: the request ends there
            return response.status_code

        def calls():
            for uid in range(5):
                self.assertEqual(get(f"/users/{uid}"), 200)
            self.assertEqual(get("/nowhere"), 404)
            self.assertEqual(get("/also/nowhere"), 404)

        seen = self.delta(calls)
        self.assertEqual(seen["GET /users/<int:uid>"][0], 5)
        self.assertEqual(seen[flameshift.UNMATCHED][0], 2)
        self.assertEqual(set(seen), {"GET /users/<int:uid>", flameshift.UNMATCHED})

    def test_the_wsgi_middleware_serves_through_its_own_failures_and_the_apps(self):
        import flameshift
        from flameshift.wsgi import ENVIRON_KEY, Middleware

        closed = []

        class Body:
            def __iter__(self):
                return iter([b"streamed"])

            def close(self):
                closed.append(True)

        def app(environ, start_response):
            if environ["PATH_INFO"] == "/raise":
                raise KeyError("the app's own error")
            # Routed by the time the request ends, not when it starts.
            environ["route"] = "/late/<id>"
            start_response("200 OK", [])
            assert environ[ENVIRON_KEY].endpoint == flameshift.UNMATCHED
            return Body() if environ["PATH_INFO"] == "/body" else [b"ok"]

        def endpoint(environ):
            if environ["PATH_INFO"] == "/broken-endpoint":
                raise ValueError("the endpoint function's own error")
            return environ.get("route")

        wsgi = Middleware(app, endpoint=endpoint)
        self.assertIs(wsgi.app, app)

        def call(path):
            body = wsgi({"REQUEST_METHOD": "POST", "PATH_INFO": path}, lambda status, headers: None)
            out = b"".join(body)
            body.close()
            return out

        def calls():
            self.assertEqual(call("/plain"), b"ok")
            self.assertEqual(call("/body"), b"streamed")
            self.assertEqual(closed, [True], "the app's body is closed when the server closes ours")
            with self.assertRaises(KeyError):
                call("/raise")
            # The endpoint function's failure is logged, never raised.
            with self.assertLogs("flameshift", "WARNING"):
                self.assertEqual(call("/broken-endpoint"), b"ok")

        seen = self.delta(calls)
        self.assertEqual(seen["POST /late/<id>"][0], 2)
        self.assertEqual(seen[flameshift.UNMATCHED][0], 2, "the app's failure and the endpoint's are counted")

    def test_django_routes_are_resolved_patterns(self):
        import django
        from django.conf import settings

        if not settings.configured:
            settings.configure(
                DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__ + "_urls", SECRET_KEY="test",
                MIDDLEWARE=["flameshift.django.Middleware"],
            )
            django.setup()
        from django.http import HttpResponse
        from django.test import Client
        from django.urls import path

        module = type(sys)(__name__ + "_urls")
        module.urlpatterns = [path("users/<int:uid>/", lambda request, uid: HttpResponse(str(burn(1))))]
        sys.modules[module.__name__] = module
        client = Client()
        seen = self.delta(lambda: [client.get(f"/users/{uid}/") for uid in range(4)] + [client.get("/x/")])
        self.assertEqual(seen["GET /users/<int:uid>/"][0], 4)
        self.assertEqual(seen["(unmatched)"][0], 1)

    def test_asgi_requests_interleaved_on_one_loop_are_each_costed_as_alone(self):
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        import flameshift

        async def heavy(request):
            for _ in range(6):
                burn(6)
                await asyncio.sleep(0)
            return PlainTextResponse("heavy")

        async def light(request):
            for _ in range(6):
                burn(2)
                await asyncio.sleep(0)
            return PlainTextResponse("light")

        app = Starlette(routes=[Route("/heavy", heavy), Route("/light/{n:int}", light)])
        app.add_middleware(flameshift.asgi.Middleware)

        async def request(path):
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                     "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                     "root_path": "", "headers": [], "server": ("test", 80), "client": ("test", 1)}
            sent = []

            async def receive():
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message):
                sent.append(message)

            await app(scope, receive, send)
            assert sent[0]["status"] == 200, sent

        def alone(n):
            async def run():
                for path in ("/heavy", "/light/1"):
                    for _ in range(n):
                        await request(path)
            asyncio.run(run())

        def together(n):
            async def run():
                await asyncio.gather(*[request(p) for _ in range(n) for p in ("/heavy", "/light/1")])
            asyncio.run(run())

        # Rounds of each in turn, so that the machine's other load (a busy
        # sibling core slows the same work) weighs on both alike; the
        # median of the rounds' ratios, so that a round the host stalled
        # (a 25-ms phase read 15% dear) does not decide.
        n, rounds = 5, 15
        solo, mixed = {}, {}
        ratios = {}
        for _ in range(rounds):
            costs = {}
            for sums, run in ((solo, alone), (mixed, together)):
                for endpoint, (count, cost) in self.delta(lambda: run(n)).items():
                    total = sums.setdefault(endpoint, [0, 0])
                    total[0] += count
                    total[1] += cost
                    costs.setdefault(endpoint, []).append(cost / count)
            for endpoint, (alone_each, each) in costs.items():
                ratios.setdefault(endpoint, []).append(each / alone_each)
        for endpoint in ("GET /heavy", "GET /light/{n:int}"):
            self.assertEqual(mixed[endpoint][0], n * rounds)
            ratio = statistics.median(ratios[endpoint])
            self.assertLess(abs(ratio - 1), 0.10,
                            f"{endpoint}: interleaved over alone, round by round: "
                            f"{[round(r, 3) for r in ratios[endpoint]]}")
        # Heavy costs about three times light: neither was charged for the other.
        ratio = (mixed["GET /heavy"][1] / mixed["GET /heavy"][0]) / (
            mixed["GET /light/{n:int}"][1] / mixed["GET /light/{n:int}"][0])
        self.assertGreater(ratio, 2.4, ratio)


if __name__ == "__main__":
    unittest.main()
