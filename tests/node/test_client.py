"""The API client (node.client) honours `429 Retry-After`: the same request again after the wait, a bounded
number of times; a 429 without Retry-After, or past the bound, is the one-line ApiError."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web

from node.client import MAX_RATE_LIMIT_RETRIES, ApiError, Client


def serve(answers: list[tuple[int, dict[str, str]]]) -> Iterator[tuple[str, list[str]]]:
    """A real aiohttp server on loopback answering each request with the next (status, headers) of `answers`
    (the last one repeats); yields its URL and the bodies it received."""
    seen: list[str] = []
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def handle(request: web.Request) -> web.Response:
        seen.append(await request.text())
        status, headers = answers[min(len(seen), len(answers)) - 1]
        body = '{"ok": true}' if status == 200 else '{"error": {"code": "rate_limited", "message": "slow down"}}'
        return web.Response(status=status, headers=headers, text=body, content_type="application/json")

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{state['port']}", seen
    finally:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def server(request):
    yield from serve(request.param)


@pytest.mark.parametrize("server", [[(429, {"Retry-After": "1"}), (200, {})]], indirect=True)
def test_a_429_with_retry_after_is_sent_again_after_the_wait(server):
    url, seen = server
    assert Client(url).post("/v1/txs", {"n": 1}) == {"ok": True}
    assert seen == ['{"n": 1}', '{"n": 1}']


@pytest.mark.parametrize("server", [[(429, {"Retry-After": "0"})]], indirect=True)
def test_the_retries_are_bounded_then_the_429_is_the_error(server):
    url, seen = server
    with pytest.raises(ApiError) as info:
        Client(url).get("/v1/pricing")
    assert info.value.status == 429 and "slow down (rate_limited)" == str(info.value)
    assert len(seen) == MAX_RATE_LIMIT_RETRIES + 1


@pytest.mark.parametrize(
    "server", [[(429, {})], [(429, {"Retry-After": "soon"})], [(503, {"Retry-After": "0"})]], indirect=True
)
def test_a_429_without_a_usable_retry_after_or_another_status_is_not_retried(server):
    url, seen = server
    with pytest.raises(ApiError):
        Client(url).get("/v1/pricing")
    assert len(seen) == 1
