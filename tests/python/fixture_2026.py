"""A dual-era MCP server on the official Python SDK (`mcp` 2.3.0): the fixtures the
conformance suite's 2026-07-28 server scenarios call (the 2025 ones, `test_missing_capability`,
the input-required tools and prompt, the listen triggers), served over stdio (default) or
streamable HTTP (`--http PORT`, endpoint `/mcp`).

The proxy is tested with it upstream: the SDK, not this project, decides what a modern server
answers (`server/discover`, `_meta` checks, `subscriptions/listen`, sealed `requestState`), so
the proxy's upstream side meets a peer nobody here wrote.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any

import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA="

server = MCPServer(name="mcp-proxy-fixture-2026", version="1.0.0")


def input_required(requests: dict[str, Any] | None = None, state: str | None = None) -> types.InputRequiredResult:
    wire: dict[str, Any] = {"resultType": "input_required"}
    if requests:
        wire["inputRequests"] = requests
    if state is not None:
        wire["requestState"] = state
    return types.InputRequiredResult.model_validate(wire)


def elicit(message: str, field: str, kind: str = "string") -> dict[str, Any]:
    return {
        "method": "elicitation/create",
        "params": {
            "message": message,
            "requestedSchema": {"type": "object", "properties": {field: {"type": kind}}, "required": [field]},
        },
    }


def sample(text: str, max_tokens: int) -> dict[str, Any]:
    return {
        "method": "sampling/createMessage",
        "params": {"messages": [{"role": "user", "content": {"type": "text", "text": text}}], "maxTokens": max_tokens},
    }


ROOTS = {"method": "roots/list", "params": {}}


def answers(ctx: Context) -> dict[str, Any]:
    """The input responses of this request as plain JSON (empty when none came)."""
    got = ctx.input_responses or {}
    return {k: (v.model_dump(by_alias=True, exclude_none=True) if hasattr(v, "model_dump") else v) for k, v in got.items()}


def field(response: Any, name: str) -> str:
    if isinstance(response, dict):
        content = response.get("content")
        if isinstance(content, dict):
            value = content.get(name)
            if value is not None:
                return str(value)
            if content.get("type") == "text":
                return str(content.get("text", ""))
    return ""


def capabilities(ctx: Context) -> dict[str, Any]:
    caps = ctx.client_capabilities
    if caps is None:
        return {}
    return caps.model_dump(by_alias=True, exclude_none=True)


# --- the 2025-11-25 fixtures ------------------------------------------------------------


@server.tool(description="Returns simple text")
def test_simple_text() -> str:
    return "This is a simple text response for testing."


@server.tool(description="Returns an image")
def test_image_content() -> list[types.ImageContent]:
    return [types.ImageContent(type="image", data=PNG, mime_type="image/png")]


@server.tool(description="Returns audio")
def test_audio_content() -> list[types.AudioContent]:
    return [types.AudioContent(type="audio", data=WAV, mime_type="audio/wav")]


@server.tool(description="Returns an embedded resource")
def test_embedded_resource() -> list[types.EmbeddedResource]:
    resource = types.TextResourceContents(
        uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
    )
    return [types.EmbeddedResource(type="resource", resource=resource)]


@server.tool(description="Returns text, image and resource")
def test_multiple_content_types() -> list[types.TextContent | types.ImageContent | types.EmbeddedResource]:
    resource = types.TextResourceContents(
        uri="test://mixed-content-resource", mime_type="application/json", text='{"test":"data","value":123}'
    )
    return [
        types.TextContent(type="text", text="Multiple content types test:"),
        types.ImageContent(type="image", data=PNG, mime_type="image/png"),
        types.EmbeddedResource(type="resource", resource=resource),
    ]


@server.tool(description="Logs three messages while running")
async def test_tool_with_logging(ctx: Context) -> str:
    for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(message)
    return "Tool with logging executed"


@server.tool(description="Reports progress while running")
async def test_tool_with_progress(ctx: Context) -> str:
    for step in (0, 50, 100):
        await ctx.report_progress(progress=step, total=100)
    return "Tool with progress executed"


@server.tool(description="Always fails")
def test_error_handling() -> str:
    raise RuntimeError("This tool intentionally returns an error for testing")


# --- the 2026-07-28 fixtures -----------------------------------------------------------


@server.tool(description="Needs the sampling capability")
def test_missing_capability(ctx: Context) -> str:
    if "sampling" not in capabilities(ctx):
        raise MCPError(
            types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            "this tool needs the sampling capability",
            {"requiredCapabilities": {"sampling": {}}},
        )
    return "Success"


@server.tool(description="MRTR: asks for the user's name")
def test_input_required_result_elicitation(ctx: Context) -> str | types.InputRequiredResult:
    got = answers(ctx)
    if "user_name" in got:
        return f"Hello, {field(got['user_name'], 'name')}!"
    return input_required({"user_name": elicit("What is your name?", "name")})


@server.tool(description="MRTR: asks for a sample")
def test_input_required_result_sampling(ctx: Context) -> str | types.InputRequiredResult:
    got = answers(ctx)
    if "capital_question" in got:
        return f"LLM said: {field(got['capital_question'], 'text')}"
    return input_required({"capital_question": sample("What is the capital of France?", 100)})


@server.tool(description="MRTR: asks for the client's roots")
def test_input_required_result_list_roots(ctx: Context) -> str | types.InputRequiredResult:
    got = answers(ctx)
    if "client_roots" in got:
        roots = got["client_roots"].get("roots", []) if isinstance(got["client_roots"], dict) else []
        return "roots: " + ", ".join(str(r.get("uri")) for r in roots if isinstance(r, dict))
    return input_required({"client_roots": ROOTS})


@server.tool(description="MRTR: round-trips requestState")
def test_input_required_result_request_state(ctx: Context) -> str | types.InputRequiredResult:
    got = answers(ctx)
    if "confirm" in got and ctx.request_state == "confirm-pending":
        return "state-ok: the request state came back"
    return input_required({"confirm": elicit("Please confirm", "ok", "boolean")}, "confirm-pending")


@server.tool(description="MRTR: asks for three inputs at once")
def test_input_required_result_multiple_inputs(ctx: Context) -> str | types.InputRequiredResult:
    got = answers(ctx)
    wanted = {
        "user_name": elicit("What is your name?", "name"),
        "greeting": sample("Generate a greeting", 50),
        "client_roots": ROOTS,
    }
    if all(k in got for k in wanted) and ctx.request_state == "multi":
        return "all inputs received: " + ", ".join(sorted(wanted))
    return input_required({k: v for k, v in wanted.items() if k not in got} or wanted, "multi")


@server.tool(description="MRTR: two rounds of questions")
def test_input_required_result_multi_round(ctx: Context) -> str | types.InputRequiredResult:
    got = answers(ctx)
    if ctx.request_state and ctx.request_state.startswith("round-2:") and "step2" in got:
        name = ctx.request_state.removeprefix("round-2:")
        return f"{name} likes {field(got['step2'], 'color')}"
    if "step1" in got:
        name = field(got["step1"], "name")
        return input_required({"step2": elicit("Step 2: What is your favorite color?", "color")}, f"round-2:{name}")
    return input_required({"step1": elicit("Step 1: What is your name?", "name")}, "round-1")


@server.tool(description="MRTR: integrity-protected requestState")
def test_input_required_result_tampered_state(ctx: Context) -> str | types.InputRequiredResult:
    if ctx.request_state == "tamper-test" and "confirm" in answers(ctx):
        return "integrity-ok: state verified"
    return input_required({"confirm": elicit("Please confirm", "ok", "boolean")}, "tamper-test")


@server.tool(description="MRTR: asks only for what the client declared")
def test_input_required_result_capabilities(ctx: Context) -> str | types.InputRequiredResult:
    got = answers(ctx)
    if got:
        return "capabilities-ok: received " + ",".join(sorted(got))
    caps = capabilities(ctx)
    wanted: dict[str, Any] = {}
    if "elicitation" in caps:
        wanted["elicit_input"] = elicit("Elicitation input", "value")
    if "sampling" in caps:
        wanted["sample_input"] = sample("Sample request", 50)
    if not wanted:
        return "No supported capabilities declared"
    return input_required(wanted, "capabilities")


@server.tool(description="MRTR with progress: reports progress in each of two rounds")
async def test_input_required_with_progress(ctx: Context) -> str | types.InputRequiredResult:
    got = answers(ctx)
    if "go_on" in got:
        await ctx.report_progress(progress=2, total=2)
        return f"progress-ok: {field(got['go_on'], 'ok')}"
    await ctx.report_progress(progress=1, total=2)
    return input_required({"go_on": elicit("Go on?", "ok", "boolean")})


@server.tool(description="MRTR: never satisfied (asks again on every retry)")
def test_input_required_forever(ctx: Context) -> types.InputRequiredResult:
    return input_required({"again": elicit("Once more?", "ok", "boolean")}, "forever")


@server.tool(description="Reports progress on its own stream")
async def test_streaming_elicitation(ctx: Context) -> str:
    await ctx.report_progress(progress=50, total=100)
    return "Streaming complete"


@server.tool(description="Logs only when the request asked for a level")
async def test_logging_tool(ctx: Context) -> str:
    await ctx.info("Diagnostic trace logging activated")
    return "Logging evaluated"


@server.tool(description="Changes the tool list")
async def test_trigger_tool_change(ctx: Context) -> str:
    await ctx.notify_tools_changed()
    return "Mutation triggered"


@server.tool(description="Changes the prompt list")
async def test_trigger_prompt_change(ctx: Context) -> str:
    await ctx.notify_prompts_changed()
    return "Mutation triggered"


@server.tool(description="Marks test://watched-resource as updated")
async def test_trigger_resource_update(ctx: Context) -> str:
    await ctx.notify_resource_updated("test://watched-resource")
    return "Update triggered"


# --- resources ---------------------------------------------------------------------------


@server.resource("test://static-text", name="static-text", description="A static text resource", mime_type="text/plain")
def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource("test://static-binary", name="static-binary", description="A static binary resource", mime_type="image/png")
def static_binary() -> bytes:
    return base64.b64decode(PNG)


@server.resource("test://watched-resource", name="watched-resource", description="A resource to subscribe to", mime_type="text/plain")
def watched() -> str:
    return "Watched resource content."


@server.resource("test://template/{id}/data", name="template", description="Data by id", mime_type="application/json")
def template(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


# --- prompts -----------------------------------------------------------------------------


@server.prompt(description="A prompt without arguments")
def test_simple_prompt() -> list[dict[str, Any]]:
    return [{"role": "user", "content": {"type": "text", "text": "This is a simple prompt for testing."}}]


@server.prompt(description="A prompt with two arguments")
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[dict[str, Any]]:
    text = f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
    return [{"role": "user", "content": {"type": "text", "text": text}}]


@server.prompt(description="A prompt embedding a resource")
def test_prompt_with_embedded_resource(resourceUri: str) -> list[dict[str, Any]]:
    resource = {"uri": resourceUri, "mimeType": "text/plain", "text": "Embedded resource content for testing."}
    return [
        {"role": "user", "content": {"type": "resource", "resource": resource}},
        {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}},
    ]


@server.prompt(description="A prompt with an image")
def test_prompt_with_image() -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": {"type": "image", "data": PNG, "mimeType": "image/png"}},
        {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}},
    ]


@server.prompt(description="MRTR: a prompt that needs the user's context")
def test_input_required_result_prompt(ctx: Context) -> list[dict[str, Any]] | types.InputRequiredResult:
    got = answers(ctx)
    if "user_context" in got:
        text = f"Use this context: {field(got['user_context'], 'context')}"
        return [{"role": "user", "content": {"type": "text", "text": text}}]
    return input_required({"user_context": elicit("What context should the prompt use?", "context")})


@server.completion()
async def complete(ref: Any, argument: types.CompletionArgument, context: Any) -> types.Completion:
    values = [v for v in ("paris", "park", "party") if v.startswith(argument.value)]
    return types.Completion(values=values, total=len(values), has_more=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT/mcp")
    args = parser.parse_args()
    if args.http is None:
        import anyio

        anyio.run(server.run_stdio_async)
        return 0
    import anyio

    anyio.run(lambda: server.run_streamable_http_async(host="127.0.0.1", port=args.http))
    return 0


if __name__ == "__main__":
    sys.exit(main())
