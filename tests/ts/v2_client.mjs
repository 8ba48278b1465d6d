// Drives the official TypeScript MCP client v2 (`@modelcontextprotocol/client` 2.4.0) as a
// 2026-07-28 client through the proxy's streamable-HTTP endpoint.
//
// Usage: node v2_client.mjs {everything|fixture} {pinned|auto} URL
//
// `everything`: the proxy in front of server-everything (a 2025-11-25 upstream).
// `fixture`: the proxy in front of tests/python/fixture_2026.py (a 2026-07-28 upstream).
// `pinned` adopts 2026-07-28 at connect (server/discover must offer it); `auto` probes and
// must not fall back. Tools, prompts, resources, a subscriptions/listen stream, and
// elicitation and sampling through the client's own handlers (input_required rounds that the
// client fulfils and retries). Prints one line per check; exits non-zero on the first failure.
//
// The client is loaded from `.tools/npm-2026` (scripts/install-test-deps.sh), or from the
// `node_modules` directory named by MCP_TS_NODE_MODULES.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = process.env.MCP_TS_NODE_MODULES ?? join(here, "../../.tools/npm-2026/node_modules");
const pkgDir = join(modules, "@modelcontextprotocol/client");
const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
const { Client, StreamableHTTPClientTransport } = await import(
  pathToFileURL(join(pkgDir, pkg.exports["."].import.default)).href
);

const MODERN = "2026-07-28";
const [kind, mode, url] = process.argv.slice(2);

function check(cond, message) {
  const what = message.replace(/\s+/g, " ");
  if (!cond) {
    console.log(`FAIL ${what}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

function textOf(result) {
  return (result.content ?? [])
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join(" ");
}

/// Resolves with the first value `test` accepts among the pushed ones, or rejects after `ms`.
function waiter(ms, what) {
  let resolve;
  const promise = new Promise((res, rej) => {
    resolve = res;
    setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms).unref();
  });
  return { promise, resolve };
}

const asked = [];

async function connect({ capabilities = {}, handlers = false } = {}) {
  const client = new Client(
    { name: "mcp-proxy-ts-v2-test", version: "1.0.0" },
    {
      capabilities,
      versionNegotiation: { mode: mode === "pinned" ? { pin: MODERN } : "auto" },
    },
  );
  if (handlers) {
    client.setRequestHandler("elicitation/create", async (request) => {
      asked.push(["elicit", request.params.message]);
      const props = Object.keys(request.params.requestedSchema?.properties ?? {});
      const content = {};
      for (const p of props) {
        const type = request.params.requestedSchema.properties[p].type;
        content[p] =
          type === "boolean" ? true : p === "email" ? "ada@example.com" : p === "color" ? "teal" : "Ada";
      }
      return { action: "accept", content };
    });
    client.setRequestHandler("sampling/createMessage", async (request) => {
      const first = request.params.messages[0]?.content;
      asked.push(["sample", first?.text ?? ""]);
      return {
        role: "assistant",
        content: { type: "text", text: "sampled-by-the-ts-client" },
        model: "ts-client-model",
        stopReason: "endTurn",
      };
    });
    if (capabilities.roots) {
      client.setRequestHandler("roots/list", async () => {
        asked.push(["roots", ""]);
        return { roots: [{ uri: "file:///ts-root", name: "ts-root" }] };
      });
    }
  }
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  check(client.getNegotiatedProtocolVersion() === MODERN, `protocol ${client.getNegotiatedProtocolVersion()}`);
  check(client.getProtocolEra() === "modern", `era ${client.getProtocolEra()}`);
  return client;
}

async function everything() {
  const c = await connect();
  const info = c.getServerVersion();
  check(info?.name === "mcp-servers/everything", `serverInfo ${JSON.stringify(info)}`);
  const tools = (await c.listTools()).tools.map((t) => t.name);
  check(tools.includes("echo") && tools.includes("get-sum"), `tools/list (${tools.length} tools)`);
  const echo = await c.callTool({ name: "echo", arguments: { message: "ts v2 hello" } });
  check(!echo.isError && textOf(echo).includes("ts v2 hello"), `tools/call echo: ${textOf(echo)}`);
  const sum = await c.callTool({ name: "get-sum", arguments: { a: 19, b: 23 } });
  check(textOf(sum).includes("42"), `tools/call get-sum: ${textOf(sum)}`);
  const steps = [];
  const long = await c.callTool(
    { name: "trigger-long-running-operation", arguments: { duration: 0.4, steps: 2 } },
    { onprogress: (p) => steps.push(p.progress) },
  );
  check(!long.isError && JSON.stringify(steps) === "[1,2]", `progress ${JSON.stringify(steps)}`);
  const prompts = (await c.listPrompts()).prompts.map((p) => p.name);
  check(prompts.includes("simple-prompt"), `prompts/list ${prompts}`);
  const p = await c.getPrompt({ name: "simple-prompt" });
  check(p.messages.length > 0 && p.messages[0].content.type === "text", "prompts/get simple-prompt");
  const args = await c.getPrompt({ name: "args-prompt", arguments: { city: "Lisbon" } });
  check(JSON.stringify(args.messages).includes("Lisbon"), "prompts/get args-prompt with an argument");
  const resources = (await c.listResources()).resources;
  check(resources.length > 0, `resources/list (${resources.length})`);
  const read = await c.readResource({ uri: resources[0].uri });
  check(read.contents.length > 0 && read.contents[0].uri === resources[0].uri, `resources/read ${resources[0].uri}`);
  const templates = (await c.listResourceTemplates()).resourceTemplates;
  check(templates.length > 0, `resources/templates/list (${templates.length})`);

  // subscriptions/listen through the proxy over a 2025 upstream: the proxy subscribes
  // upstream; server-everything's simulated updates (switched on, then off again so a second
  // run starts from the same state) reach the client on the listen stream
  const uri = resources[0].uri;
  const updated = waiter(20000, "notifications/resources/updated");
  c.setNotificationHandler("notifications/resources/updated", (n) => {
    if (n.params.uri === uri) updated.resolve();
  });
  const sub = await c.listen({ resourceSubscriptions: [uri] });
  check(
    JSON.stringify(sub.honoredFilter.resourceSubscriptions) === JSON.stringify([uri]),
    `listen acknowledged ${JSON.stringify(sub.honoredFilter)}`,
  );
  const on = await c.callTool({ name: "toggle-subscriber-updates", arguments: {} });
  check(textOf(on).includes("Started"), `updates switched on: ${textOf(on).slice(0, 80)}`);
  await updated.promise;
  check(true, `resources/updated for ${uri} arrived on the listen stream`);
  const off = await c.callTool({ name: "toggle-subscriber-updates", arguments: {} });
  check(textOf(off).includes("Stopped"), `updates switched off: ${textOf(off).slice(0, 80)}`);
  await sub.close();
  // a client that declared no elicitation capability is never asked: -32021 from the proxy
  const refused = await c.callTool({ name: "trigger-elicitation-request", arguments: {} }).then(
    () => null,
    (err) => err,
  );
  check(refused?.code === -32021, `undeclared elicitation refused: ${refused?.code} ${refused?.message}`);
  await c.close();

  // elicitation and sampling asked by the 2025 upstream mid-call: the proxy turns them into
  // input_required rounds, the client answers through its handlers and retries
  const h = await connect({ capabilities: { elicitation: {}, sampling: {} }, handlers: true });
  const el = await h.callTool({ name: "trigger-elicitation-request", arguments: {} });
  check(!el.isError && textOf(el).includes("Ada"), `elicitation crossed the eras: ${textOf(el).slice(0, 160)}`);
  const sm = await h.callTool({ name: "trigger-sampling-request", arguments: { prompt: "say hi", maxTokens: 5 } });
  check(
    !sm.isError && textOf(sm).includes("sampled-by-the-ts-client"),
    `sampling crossed the eras: ${textOf(sm).slice(0, 160)}`,
  );
  check(
    JSON.stringify(asked.map(([k]) => k)) === JSON.stringify(["elicit", "sample"]),
    `handlers ran once each: ${JSON.stringify(asked)}`,
  );
  await h.close();
}

async function fixture() {
  const c = await connect();
  const info = c.getServerVersion();
  check(info?.name === "mcp-proxy-fixture-2026", `serverInfo ${JSON.stringify(info)}`);
  const tools = (await c.listTools()).tools.map((t) => t.name);
  check(tools.includes("test_simple_text") && tools.includes("test_input_required_result_elicitation"), `tools/list (${tools.length} tools)`);
  const simple = await c.callTool({ name: "test_simple_text", arguments: {} });
  check(textOf(simple) === "This is a simple text response for testing.", `tools/call test_simple_text: ${textOf(simple)}`);
  const image = await c.callTool({ name: "test_image_content", arguments: {} });
  check(image.content[0]?.type === "image" && image.content[0].mimeType === "image/png", "tools/call test_image_content");
  const failing = await c.callTool({ name: "test_error_handling", arguments: {} });
  check(failing.isError === true && textOf(failing).includes("test_error_handling"), `a tool error stays a result: ${textOf(failing)}`);
  const steps = [];
  const progress = await c.callTool(
    { name: "test_tool_with_progress", arguments: {} },
    { onprogress: (p) => steps.push(p.progress) },
  );
  check(!progress.isError && JSON.stringify(steps) === "[0,50,100]", `progress ${JSON.stringify(steps)}`);
  // log messages only for a request that names a level (logging/setLevel is gone in 2026)
  const logs = [];
  c.setNotificationHandler("notifications/message", (n) => logs.push(n.params.data));
  await c.callTool({ name: "test_tool_with_logging", arguments: {} });
  check(logs.length === 0, `no log level, no log messages: ${JSON.stringify(logs)}`);
  await c.callTool({
    name: "test_tool_with_logging",
    arguments: {},
    _meta: { "io.modelcontextprotocol/logLevel": "debug" },
  });
  check(
    JSON.stringify(logs) ===
      JSON.stringify(["Tool execution started", "Tool processing data", "Tool execution completed"]),
    `logLevel debug: ${JSON.stringify(logs)}`,
  );
  // the upstream's -32021 reaches the client as the SDK's typed error, data intact
  const missing = await c.callTool({ name: "test_missing_capability", arguments: {} }).then(
    () => null,
    (err) => err,
  );
  check(
    missing?.code === -32021 && missing?.data?.requiredCapabilities?.sampling !== undefined,
    `missing capability: ${missing?.code} ${JSON.stringify(missing?.data)}`,
  );
  const prompts = (await c.listPrompts()).prompts.map((p) => p.name);
  check(prompts.includes("test_prompt_with_arguments"), `prompts/list ${prompts.length}`);
  const p = await c.getPrompt({ name: "test_prompt_with_arguments", arguments: { arg1: "one", arg2: "two" } });
  check(p.messages[0]?.content?.text === "Prompt with arguments: arg1='one', arg2='two'", "prompts/get with arguments");
  const resources = (await c.listResources()).resources.map((r) => r.uri);
  check(resources.includes("test://static-text"), `resources/list ${resources}`);
  const read = await c.readResource({ uri: "test://static-text" });
  check(read.contents[0]?.text === "This is the content of the static text resource.", "resources/read test://static-text");
  const templates = (await c.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
  check(templates.includes("test://template/{id}/data"), `resources/templates/list ${templates}`);
  const data = await c.readResource({ uri: "test://template/42/data" });
  check(JSON.parse(data.contents[0].text).id === "42", "resources/read from a template");
  const done = await c.complete({
    ref: { type: "ref/prompt", name: "test_prompt_with_arguments" },
    argument: { name: "arg1", value: "par" },
  });
  check(JSON.stringify(done.completion.values) === JSON.stringify(["paris", "park", "party"]), "completion/complete");

  // subscriptions/listen through the proxy: a tool-list change reaches the client
  const changed = waiter(20000, "notifications/tools/list_changed");
  c.setNotificationHandler("notifications/tools/list_changed", () => changed.resolve());
  const sub = await c.listen({ toolsListChanged: true });
  check(sub.honoredFilter.toolsListChanged === true, `listen acknowledged ${JSON.stringify(sub.honoredFilter)}`);
  await c.callTool({ name: "test_trigger_tool_change", arguments: {} });
  await changed.promise;
  check(true, "tools/list_changed arrived on the listen stream");
  await sub.close();
  // the upstream sees the client's own (empty) capabilities and asks for nothing
  const none = await c.callTool({ name: "test_input_required_result_capabilities", arguments: {} });
  check(textOf(none) === "No supported capabilities declared", `no capabilities: ${textOf(none)}`);
  await c.close();

  // input_required results from the 2026 upstream pass through; the client fulfils them
  const h = await connect({ capabilities: { elicitation: {}, sampling: {}, roots: {} }, handlers: true });
  const el = await h.callTool({ name: "test_input_required_result_elicitation", arguments: {} });
  check(textOf(el) === "Hello, Ada!", `input_required elicitation: ${textOf(el)}`);
  const sm = await h.callTool({ name: "test_input_required_result_sampling", arguments: {} });
  check(textOf(sm) === "LLM said: sampled-by-the-ts-client", `input_required sampling: ${textOf(sm)}`);
  const roots = await h.callTool({ name: "test_input_required_result_list_roots", arguments: {} });
  check(textOf(roots) === "roots: file:///ts-root", `input_required roots: ${textOf(roots)}`);
  const rounds = await h.callTool({ name: "test_input_required_result_multi_round", arguments: {} });
  check(textOf(rounds) === "Ada likes teal", `two rounds with requestState: ${textOf(rounds)}`);
  const declared = await h.callTool({ name: "test_input_required_result_capabilities", arguments: {} });
  check(
    textOf(declared) === "capabilities-ok: received elicit_input,sample_input",
    `declared capabilities reach the upstream: ${textOf(declared)}`,
  );
  const prompt = await h.getPrompt({ name: "test_input_required_result_prompt" });
  check(prompt.messages[0]?.content?.text === "Use this context: Ada", "input_required on prompts/get");
  // (the order within one round is the client's business)
  const kinds = asked.map(([k]) => k).sort();
  check(
    JSON.stringify(kinds) === JSON.stringify(["elicit", "elicit", "elicit", "elicit", "elicit", "roots", "sample", "sample"]),
    `handlers ran once per input request: ${JSON.stringify(kinds)}`,
  );
  await h.close();
}

const timer = setTimeout(() => {
  console.log("FAIL timed out");
  process.exit(1);
}, 150000);
try {
  if (kind === "everything") {
    await everything();
  } else if (kind === "fixture") {
    await fixture();
  } else {
    throw new Error(`unknown kind ${kind}`);
  }
  clearTimeout(timer);
  console.log("all ok");
} catch (err) {
  console.log(`FAIL ${err?.stack ?? err}`);
  process.exit(1);
}
