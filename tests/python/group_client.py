"""Drives the official MCP Python SDK client through a proxy group (for example the
built-in /mcp of every upstream) over streamable HTTP.

Usage: group_client.py URL

Expects the members `ev` (server-everything), `time` (mcp-server-time) and `web` (an HTTP
upstream with an `echo` tool), names prefixed `{member}__`. Checks the merged listing, a
call to each member, sampling and elicitation from a member, then prints `KILL` and waits
for a line on stdin (the test kills ev's upstream process meanwhile), and checks the
session lives on: other members answer, and ev answers again on a fresh upstream session.
Prints one line per check and exits non-zero on the first failure.
"""

import asyncio
import sys

import httpx2
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


def check(cond, what):
    if not cond:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok {what}", flush=True)


def text_of(result):
    return " ".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def sampling(_ctx, params):
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="sampled-through-the-group"),
        model="test-model",
        stop_reason="endTurn",
    )


async def elicitation(_ctx, params):
    return types.ElicitResult(action="accept", content={"name": "Grace", "check": True})


async def main(url):
    client = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120))
    async with client:
        async with streamable_http_client(url, http_client=client) as streams:
            async with ClientSession(
                streams[0],
                streams[1],
                read_timeout_seconds=60,
                sampling_callback=sampling,
                elicitation_callback=elicitation,
            ) as s:
                init = await s.initialize()
                check(init.capabilities.tools is not None, "initialize: the union has tools")
                names = [t.name for t in (await s.list_tools()).tools]
                for needed in ("ev__echo", "time__get_current_time", "web__echo"):
                    check(needed in names, f"tools/list has {needed}")
                check(len(names) == len(set(names)), "merged names are unique")
                r = await s.call_tool("ev__echo", {"message": "to ev"})
                check("to ev" in text_of(r), "a call reaches ev")
                r = await s.call_tool("time__get_current_time", {"timezone": "UTC"})
                check("UTC" in text_of(r), "a call reaches time")
                r = await s.call_tool("web__echo", {"message": "to web"})
                check("to web" in text_of(r), "a call reaches web")
                r = await s.call_tool("ev__trigger-sampling-request", {"prompt": "hi", "maxTokens": 5})
                check("sampled-through-the-group" in text_of(r), "sampling from a member reaches the client")
                r = await s.call_tool("ev__trigger-elicitation-request", {})
                check("Grace" in text_of(r), "elicitation from a member reaches the client")
                prompts = [p.name for p in (await s.list_prompts()).prompts]
                check("ev__simple-prompt" in prompts, "prompts/list is merged")
                p = await s.get_prompt("ev__simple-prompt")
                check(len(p.messages) > 0, "prompts/get reaches ev")
                print("KILL", flush=True)
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
                r = await s.call_tool("time__get_current_time", {"timezone": "UTC"})
                check("UTC" in text_of(r), "the session lives on after a member died")
                r = await s.call_tool("ev__echo", {"message": "again"})
                check("again" in text_of(r), "the dead member answers again on a fresh session")
    print("all ok", flush=True)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1]), 180))
