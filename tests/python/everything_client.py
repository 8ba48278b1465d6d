"""Drives the official MCP Python SDK client through the proxy to server-everything.

Usage: everything_client.py {sse|streamable} URL [TOKEN]

Runs, in one session: tools (list, call), prompts (list, get), resources (list, read),
progress, sampling, elicitation and roots; then two sessions at once. Prints one line per
check and exits non-zero on the first failure.
"""

import asyncio
import contextlib
import sys

import httpx2
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

ROOT = "file:///tmp/proxy-test-root"


def check(cond, what):
    if not cond:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok {what}", flush=True)


def text_of(result):
    return " ".join(c.text for c in result.content if getattr(c, "type", "") == "text")


@contextlib.asynccontextmanager
async def connect(kind, url, token):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    if kind == "sse":
        async with sse_client(url, headers=headers, timeout=30, sse_read_timeout=120) as (r, w):
            yield r, w
    else:
        client = httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(30, read=120))
        async with client:
            async with streamable_http_client(url, http_client=client) as streams:
                yield streams[0], streams[1]


async def sampling(_ctx, params):
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="sampled-by-python-client"),
        model="test-model",
        stop_reason="endTurn",
    )


async def elicitation(_ctx, params):
    return types.ElicitResult(action="accept", content={"name": "Ada", "check": True})


async def roots(_ctx):
    return types.ListRootsResult(roots=[types.Root(uri=ROOT, name="test-root")])


def session(r, w):
    return ClientSession(
        r,
        w,
        read_timeout_seconds=60,
        sampling_callback=sampling,
        elicitation_callback=elicitation,
        list_roots_callback=roots,
    )


async def full(kind, url, token):
    async with connect(kind, url, token) as (r, w):
        async with session(r, w) as s:
            init = await s.initialize()
            check(init.server_info.name != "", f"initialize ({init.protocol_version})")
            tools = {t.name for t in (await s.list_tools()).tools}
            check("echo" in tools, "tools/list has echo")
            for needed in ("trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"):
                check(needed in tools, f"tools/list has {needed} (client capabilities reached the upstream)")
            r1 = await s.call_tool("echo", {"message": "hello through the proxy"})
            check("hello through the proxy" in text_of(r1), "tools/call echo")
            prompts = {p.name for p in (await s.list_prompts()).prompts}
            check("simple-prompt" in prompts, "prompts/list")
            p = await s.get_prompt("simple-prompt")
            check(len(p.messages) > 0, "prompts/get simple-prompt")
            res = (await s.list_resources()).resources
            check(len(res) > 0, "resources/list")
            read = await s.read_resource(res[0].uri)
            check(len(read.contents) > 0, f"resources/read {res[0].uri}")
            seen = []

            async def on_progress(progress, total, message):
                seen.append(progress)

            r2 = await s.call_tool(
                "trigger-long-running-operation",
                {"duration": 0.6, "steps": 3},
                progress_callback=on_progress,
            )
            check(not r2.is_error, "long-running operation")
            check(len(seen) >= 2 and seen == sorted(seen), f"progress notifications {seen}")
            r3 = await s.call_tool("trigger-sampling-request", {"prompt": "hi", "maxTokens": 10})
            check("sampled-by-python-client" in text_of(r3), "sampling round trip")
            r4 = await s.call_tool("trigger-elicitation-request", {})
            check("Ada" in text_of(r4), "elicitation round trip")
            r5 = await s.call_tool("get-roots-list", {})
            check(ROOT in text_of(r5), "roots round trip")
            await s.send_ping()
            check(True, "ping")


async def concurrent(kind, url, token):
    async def one(tag):
        async with connect(kind, url, token) as (r, w):
            async with session(r, w) as s:
                await s.initialize()
                outs = []
                for i in range(5):
                    res = await s.call_tool("echo", {"message": f"{tag}-{i}"})
                    outs.append(text_of(res))
                return outs

    a, b = await asyncio.gather(one("alpha"), one("beta"))
    check(all("alpha" in x for x in a) and all("beta" in x for x in b), "two concurrent sessions")


async def main():
    kind, url = sys.argv[1], sys.argv[2]
    token = sys.argv[3] if len(sys.argv) > 3 else None
    await asyncio.wait_for(full(kind, url, token), 120)
    await asyncio.wait_for(concurrent(kind, url, token), 120)
    print("all ok", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
