"""Drives the official MCP Python SDK (2.3.0) as a 2025 client (`mode="legacy"`: the
initialize handshake) through the proxy in front of a 2026-07-28 upstream
(`fixture_2026.py`).

Usage: legacy_client.py URL

The upstream asks for input with `input_required` results; the proxy must turn them into
real server→client requests (elicitation, sampling, roots) and retry the upstream itself.
The client is built with `input_required_max_rounds=0`, so an `input_required` result that
reached it would fail the call: every answer below came through the proxy's translation.
Prints one line per check and exits non-zero on the first failure.
"""

import asyncio
import sys

from mcp import Client, types
from mcp.shared.exceptions import MCPError


def check(cond, what):
    if not cond:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok {what}", flush=True)


def text_of(result):
    return " ".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def main(url):
    asked = []

    async def on_elicit(context, params):
        asked.append(("elicit", params.message))
        if "color" in params.message:
            return types.ElicitResult(action="accept", content={"color": "blue"})
        if "context" in params.message:
            return types.ElicitResult(action="accept", content={"context": "the-context"})
        if "Go on" in params.message or "confirm" in params.message:
            return types.ElicitResult(action="accept", content={"ok": True})
        return types.ElicitResult(action="accept", content={"name": "Alice"})

    async def on_sample(context, params):
        asked.append(("sample", params.messages[0].content.text))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="Paris"),
            model="client-model",
            stop_reason="endTurn",
        )

    async def on_roots(context):
        asked.append(("roots", ""))
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    async with Client(
        url,
        mode="legacy",
        read_timeout_seconds=60,
        input_required_max_rounds=0,
        elicitation_callback=on_elicit,
        sampling_callback=on_sample,
        list_roots_callback=on_roots,
    ) as c:
        check(c.protocol_version.startswith("2025-"), f"protocol {c.protocol_version}")
        r = await c.call_tool("test_simple_text", {})
        check("simple text" in text_of(r), "tools/call without input")
        r = await c.call_tool("test_input_required_result_elicitation", {})
        check(text_of(r) == "Hello, Alice!", f"elicitation: {text_of(r)!r}")
        r = await c.call_tool("test_input_required_result_sampling", {})
        check(text_of(r) == "LLM said: Paris", f"sampling: {text_of(r)!r}")
        r = await c.call_tool("test_input_required_result_list_roots", {})
        check(text_of(r) == "roots: file:///work/project", f"roots: {text_of(r)!r}")
        r = await c.call_tool("test_input_required_result_request_state", {})
        check(text_of(r).startswith("state-ok"), f"requestState echoed: {text_of(r)!r}")
        r = await c.call_tool("test_input_required_result_multiple_inputs", {})
        check(text_of(r).startswith("all inputs received"), f"three inputs in one round: {text_of(r)!r}")
        r = await c.call_tool("test_input_required_result_multi_round", {})
        check(text_of(r) == "Alice likes blue", f"two rounds: {text_of(r)!r}")
        p = await c.get_prompt("test_input_required_result_prompt", {})
        check("the-context" in p.messages[0].content.text, f"prompts/get with input: {p.messages[0].content.text!r}")
        seen = []

        async def on_progress(progress, total, message):
            seen.append(progress)

        r = await c.call_tool("test_input_required_with_progress", {}, progress_callback=on_progress)
        check(text_of(r) == "progress-ok: True", f"progress across rounds: {text_of(r)!r}")
        check(sorted(seen) == [1, 2], f"progress of both rounds reached the client: {seen}")
        try:
            r = await c.call_tool("test_input_required_forever", {})
            check(False, f"an upstream that never stops asking fails the call: {text_of(r)!r}")
        except MCPError as e:
            check(
                e.error.code == -32603 and "after 8 rounds" in e.error.message,
                f"an upstream that never stops asking fails the call after 8 rounds: {e}",
            )
        kinds = sorted({k for k, _ in asked})
        check(kinds == ["elicit", "roots", "sample"], f"real requests reached the callbacks: {kinds}")

    # A client that declares elicitation only: the upstream sees just that, and what it
    # asks anyway (sampling) is refused with -32021 without asking the client.
    only = []

    async def on_elicit_only(context, params):
        only.append(params.message)
        return types.ElicitResult(action="accept", content={"value": "v"})

    async with Client(
        url,
        mode="legacy",
        read_timeout_seconds=60,
        input_required_max_rounds=0,
        elicitation_callback=on_elicit_only,
    ) as c:
        r = await c.call_tool("test_input_required_result_capabilities", {})
        check(text_of(r) == "capabilities-ok: received elicit_input", f"only declared inputs asked: {text_of(r)!r}")
        try:
            r = await c.call_tool("test_input_required_result_sampling", {})
            check(False, f"an undeclared input request is refused: {text_of(r)!r}")
        except MCPError as e:
            # Refused by the proxy (the upstream asked anyway), never asked of the client.
            check(
                e.error.code == -32021 and 'needs input "capital_question"' in e.error.message,
                f"an undeclared input request is refused with -32021: {e.error.code} {e}",
            )
        check(only == ["Elicitation input"], f"the client was asked only what it declared: {only}")
    print("all ok", flush=True)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1]), 180))
