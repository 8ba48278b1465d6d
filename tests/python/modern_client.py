"""Drives the official MCP Python SDK (2.3.0) as a 2026-07-28 client through the proxy.

Usage: modern_client.py {pinned|auto} URL

`pinned` adopts 2026-07-28 without a probe; `auto` probes `server/discover` first (and
must end on 2026-07-28, not fall back). In front of server-everything: tools, prompts,
resources, progress, a request without a log level, and the upstream's elicitation and
sampling requests crossing the eras (the proxy turns them into `input_required` rounds;
the SDK answers them through its callbacks and retries). Prints one line per check and
exits non-zero on the first failure.
"""

import asyncio
import sys

from mcp import Client, types


def check(cond, what):
    if not cond:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok {what}", flush=True)


def text_of(result):
    return " ".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def main(mode, url):
    logs = []

    async def on_log(params):
        logs.append(params)

    pin = "2026-07-28" if mode == "pinned" else "auto"
    async with Client(url, mode=pin, read_timeout_seconds=60, logging_callback=on_log, log_level="debug") as c:
        check(c.protocol_version == "2026-07-28", f"protocol {c.protocol_version}")
        if mode == "auto":
            info = c.server_info
            check(info is not None and info.name != "", f"server/discover gave serverInfo {info}")
        tools = {t.name for t in (await c.list_tools()).tools}
        check("echo" in tools, "tools/list has echo")
        r = await c.call_tool("echo", {"message": "modern hello"})
        check("modern hello" in text_of(r), "tools/call echo")
        prompts = {p.name for p in (await c.list_prompts()).prompts}
        check("simple-prompt" in prompts, "prompts/list")
        p = await c.get_prompt("simple-prompt")
        check(len(p.messages) > 0, "prompts/get")
        res = (await c.list_resources()).resources
        check(len(res) > 0, "resources/list")
        read = await c.read_resource(res[0].uri)
        check(len(read.contents) > 0, "resources/read")
        seen = []

        async def on_progress(progress, total, message):
            seen.append(progress)

        r = await c.call_tool(
            "trigger-long-running-operation",
            {"duration": 0.4, "steps": 2},
            progress_callback=on_progress,
        )
        check(not r.is_error and len(seen) >= 1, f"progress {seen}")
    # elicitation and sampling asked by the 2025 upstream, answered through the callbacks
    asked = []

    async def on_elicit(context, params):
        asked.append(("elicit", params.message))
        return types.ElicitResult(action="accept", content={"name": "Ada", "check": True, "email": "ada@example.com"})

    async def on_sample(context, params):
        asked.append(("sample", params.messages[0].content.text))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="sampled-by-the-client"),
            model="client-model",
            stop_reason="endTurn",
        )

    async with Client(
        url,
        mode=pin,
        read_timeout_seconds=60,
        elicitation_callback=on_elicit,
        sampling_callback=on_sample,
    ) as c:
        r = await c.call_tool("trigger-elicitation-request", {})
        text = text_of(r)
        check(not r.is_error and "Ada" in text, f"elicitation crossed the eras: {text[:200]!r}")
        r = await c.call_tool("trigger-sampling-request", {"prompt": "say hi", "maxTokens": 5})
        text = text_of(r)
        check(not r.is_error and "sampled-by-the-client" in text, f"sampling crossed the eras: {text[:200]!r}")
        check([k for k, _ in asked] == ["elicit", "sample"], f"callbacks ran once each: {asked}")
    # without a log level, no log messages
    quiet = []

    async def on_quiet(params):
        quiet.append(params)

    async with Client(url, mode=pin, read_timeout_seconds=60, logging_callback=on_quiet) as c:
        await c.call_tool("echo", {"message": "no logs please"})
        check(True, "a request without logLevel")
    print("all ok", flush=True)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), 180))
