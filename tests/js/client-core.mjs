// Shared logic of the AI SDK client used by the end-to-end tests.
//
// Each SDK project (ai-sdk-2/, ai-sdk-3/) has a small client.mjs that imports its own
// installed `ai` and `@ai-sdk/openai-compatible` and hands them to runClient() below, so
// the same code drives both major versions. ESM resolves bare imports relative to the
// importing file, which is why the imports live in the per-project entry points.
//
// Input: one JSON object (or an array of them, run one after another), as the first
// command-line argument or on stdin:
//   {
//     "baseURL": "http://127.0.0.1:8000/v1",     required
//     "apiKey": "sk-...",                         optional (default "test")
//     "model": "some-model",                      required
//     "stream": true,                             optional (default true): streamText vs generateText
//     "tools": [{"type": "function", "function": {"name", "description", "parameters"}}],
//     "messages": [OpenAI chat messages] | "prompt": "text",   exactly one of the two
//     "toolChoice": "auto" | "none" | "required" | {"type": "function", "function": {"name"}},
//     "includeUsage": false,                      optional: sends stream_options.include_usage
//     "timeoutMs": 20000                          optional: whole-call deadline
//   }
// Output: exactly one JSON line on stdout (an array of these for an array input):
//   {ok, sdk, text, finishReason, rawFinishReason, toolCalls: [{toolCallId, toolName, input, invalid}],
//    errors: [string], warnings: [string], partTypes: [string], usage, timedOut}
// Exit status: 0 when ok, 1 when the SDK reported an error, threw or timed out, 2 on bad input.

const DEFAULT_TIMEOUT_MS = 20000;
// Extra time given to the SDK to wind down after the abort before the process gives up on it.
const ABORT_GRACE_MS = 2000;

class InputError extends Error {
  name = "InputError";
}

let emitted = false;

function emit(result, exitCode) {
  if (emitted) return;
  emitted = true;
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(exitCode));
}

function describeError(error) {
  if (error instanceof Error) {
    let text = `${error.name}: ${error.message}`;
    if (typeof error.statusCode === "number") text += ` [HTTP ${error.statusCode}]`;
    if (error.cause !== undefined && error.cause !== null) text += ` (cause: ${describeError(error.cause)})`;
    return text;
  }
  if (typeof error === "string") return error;
  try {
    return JSON.stringify(error);
  } catch {
    return String(error);
  }
}

function describeWarning(warning) {
  if (warning === null || typeof warning !== "object") return String(warning);
  const parts = [warning.type, warning.feature ?? warning.setting ?? warning.tool?.name, warning.details ?? warning.message];
  return parts.filter((p) => typeof p === "string" && p.length > 0).join(": ");
}

function checkSpec(spec) {
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) throw new InputError("input must be a JSON object");
  for (const key of ["baseURL", "model"]) {
    if (typeof spec[key] !== "string" || spec[key].length === 0) throw new InputError(`"${key}" must be a non-empty string`);
  }
  if ((spec.messages === undefined) === (spec.prompt === undefined)) {
    throw new InputError('give exactly one of "messages" and "prompt"');
  }
}

async function readInput(argv) {
  let raw = argv[2];
  if (raw === undefined) {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    raw = Buffer.concat(chunks).toString("utf8");
  }
  let spec;
  try {
    spec = JSON.parse(raw);
  } catch (error) {
    throw new InputError(`input is not valid JSON: ${error.message}`);
  }
  for (const one of Array.isArray(spec) ? spec : [spec]) checkSpec(one);
  return spec;
}

function convertTools(ai, tools) {
  if (tools === undefined || tools === null) return undefined;
  if (!Array.isArray(tools)) throw new InputError('"tools" must be a list');
  const out = {};
  for (const entry of tools) {
    const fn = entry?.function;
    if (entry?.type !== "function" || typeof fn?.name !== "string") {
      throw new InputError(`unsupported tool entry: ${JSON.stringify(entry)}`);
    }
    // No `execute`: the SDK stops after the model's step and reports the calls to us.
    out[fn.name] = ai.tool({
      description: fn.description,
      inputSchema: ai.jsonSchema(fn.parameters ?? { type: "object", properties: {} }),
    });
  }
  return out;
}

function convertToolChoice(choice) {
  if (choice === undefined || choice === null) return undefined;
  if (choice === "auto" || choice === "none" || choice === "required") return choice;
  if (choice?.type === "function" && typeof choice.function?.name === "string") {
    return { type: "tool", toolName: choice.function.name };
  }
  if (choice?.type === "tool" && typeof choice.toolName === "string") return choice;
  throw new InputError(`unsupported toolChoice: ${JSON.stringify(choice)}`);
}

function parseArguments(text) {
  try {
    return JSON.parse(text);
  } catch {
    throw new InputError(`tool call arguments in the history are not JSON: ${text}`);
  }
}

// OpenAI chat messages -> AI SDK ModelMessages (the same shape in ai 6 and ai 7).
function convertMessages(messages) {
  if (!Array.isArray(messages)) throw new InputError('"messages" must be a list');
  const toolNames = new Map();
  return messages.map((m) => {
    switch (m?.role) {
      case "system":
      case "user":
        if (typeof m.content !== "string") throw new InputError(`${m.role} content must be a string`);
        return { role: m.role, content: m.content };
      case "assistant": {
        const calls = m.tool_calls ?? [];
        if (calls.length === 0) return { role: "assistant", content: m.content ?? "" };
        const content = [];
        if (typeof m.content === "string" && m.content.length > 0) content.push({ type: "text", text: m.content });
        for (const call of calls) {
          toolNames.set(call.id, call.function.name);
          content.push({
            type: "tool-call",
            toolCallId: call.id,
            toolName: call.function.name,
            input: parseArguments(call.function.arguments),
          });
        }
        return { role: "assistant", content };
      }
      case "tool": {
        const toolName = m.name ?? toolNames.get(m.tool_call_id);
        if (toolName === undefined) throw new InputError(`tool message for unknown call ${m.tool_call_id}`);
        const value = typeof m.content === "string" ? m.content : JSON.stringify(m.content);
        return {
          role: "tool",
          content: [{ type: "tool-result", toolCallId: m.tool_call_id, toolName, output: { type: "text", value } }],
        };
      }
      default:
        throw new InputError(`unsupported message: ${JSON.stringify(m)}`);
    }
  });
}

function recordToolCall(result, call) {
  const entry = { toolCallId: call.toolCallId, toolName: call.toolName, input: call.input ?? null };
  if (call.invalid === true) {
    entry.invalid = true;
    result.errors.push(`invalid tool call ${call.toolName}: ${describeError(call.error)}`);
  }
  result.toolCalls.push(entry);
}

async function runStream(ai, options, result) {
  const stream = ai.streamText({
    ...options,
    // Errors arrive as `error` parts in fullStream; keep the SDK from printing them as well.
    onError: () => {},
  });
  for await (const part of stream.fullStream) {
    result.partTypes.push(part.type);
    switch (part.type) {
      case "text-delta":
        result.text += part.text;
        break;
      case "tool-call":
        recordToolCall(result, part);
        break;
      case "tool-error":
        result.errors.push(`tool error ${part.toolName}: ${describeError(part.error)}`);
        break;
      case "error":
        result.errors.push(describeError(part.error));
        break;
      case "abort":
        result.errors.push(`stream aborted${part.reason ? `: ${part.reason}` : ""}`);
        break;
      case "finish":
        result.finishReason = part.finishReason;
        result.rawFinishReason = part.rawFinishReason ?? null;
        result.usage = part.totalUsage ?? null;
        break;
      default:
        break;
    }
  }
}

async function runGenerate(ai, options, result) {
  const response = await ai.generateText(options);
  result.text = response.text;
  result.finishReason = response.finishReason;
  result.rawFinishReason = response.rawFinishReason ?? null;
  result.usage = response.usage ?? null;
  for (const part of response.content) {
    result.partTypes.push(part.type);
    if (part.type === "tool-error") result.errors.push(`tool error ${part.toolName}: ${describeError(part.error)}`);
  }
  for (const call of response.toolCalls) recordToolCall(result, call);
}

/**
 * Runs one request described by `spec`; returns its result object (never throws).
 */
async function runOne({ ai, createOpenAICompatible, sdk, callOptions }, spec) {
  const result = {
    ok: false,
    sdk,
    text: "",
    finishReason: null,
    rawFinishReason: null,
    toolCalls: [],
    errors: [],
    warnings: [],
    partTypes: [],
    usage: null,
    timedOut: false,
  };
  globalThis.AI_SDK_LOG_WARNINGS = ({ warnings }) => {
    for (const w of warnings) result.warnings.push(describeWarning(w));
  };
  const timeoutMs = Number.isFinite(spec.timeoutMs) && spec.timeoutMs > 0 ? spec.timeoutMs : DEFAULT_TIMEOUT_MS;
  const controller = new AbortController();
  const timeoutMessage = `timeout: no complete response within ${timeoutMs} ms`;
  let timer;
  // The call races its deadline: an SDK that does not unwind after the abort still yields a result.
  const deadline = new Promise((resolve) => {
    timer = setTimeout(() => {
      result.timedOut = true;
      controller.abort(new Error(timeoutMessage));
      setTimeout(resolve, ABORT_GRACE_MS);
    }, timeoutMs);
  });
  const call = (async () => {
    const provider = createOpenAICompatible({
      name: "toolmend-test",
      baseURL: spec.baseURL,
      apiKey: spec.apiKey ?? "test",
      includeUsage: spec.includeUsage === true,
    });
    const options = {
      ...callOptions,
      model: provider.chatModel(spec.model),
      tools: convertTools(ai, spec.tools),
      toolChoice: convertToolChoice(spec.toolChoice),
      maxRetries: 0,
      abortSignal: controller.signal,
    };
    if (spec.messages !== undefined) options.messages = convertMessages(spec.messages);
    else options.prompt = spec.prompt;
    if (spec.stream === false) await runGenerate(ai, options, result);
    else await runStream(ai, options, result);
  })().catch((error) => {
    result.errors.push(describeError(error));
    if (error instanceof InputError) result.inputError = true;
  });
  await Promise.race([call, deadline]);
  clearTimeout(timer);
  if (result.timedOut && !result.errors.includes(timeoutMessage)) result.errors.unshift(timeoutMessage);
  result.ok = result.errors.length === 0;
  return result;
}

/**
 * Runs the request(s) described by the input JSON and prints the result line: one object
 * for one spec, or an array of results for an array of specs (one process, many requests).
 * @param {object} deps
 * @param {object} deps.ai - the `ai` module namespace
 * @param {Function} deps.createOpenAICompatible - from `@ai-sdk/openai-compatible`
 * @param {object} deps.sdk - label and versions reported in the output
 * @param {object} [deps.callOptions] - extra options for streamText/generateText of this major version
 */
export async function runClient({ ai, createOpenAICompatible, sdk, callOptions = {} }) {
  // stdout carries only the result line: anything the SDK logs goes to stderr.
  const toStderr = (...args) => console.error(...args);
  console.log = toStderr;
  console.info = toStderr;
  const fatal = (message) => emit({ ok: false, sdk, errors: [message] }, 1);
  process.on("uncaughtException", (error) => fatal(`uncaught exception: ${describeError(error)}`));
  process.on("unhandledRejection", (error) => fatal(`unhandled rejection: ${describeError(error)}`));

  let spec;
  try {
    spec = await readInput(process.argv);
  } catch (error) {
    emit({ ok: false, sdk, errors: [describeError(error)] }, 2);
    return;
  }
  const deps = { ai, createOpenAICompatible, sdk, callOptions };
  if (Array.isArray(spec)) {
    const results = [];
    for (const one of spec) results.push(await runOne(deps, one));
    emit(results, results.every((r) => r.ok) ? 0 : 1);
    return;
  }
  const result = await runOne(deps, spec);
  emit(result, result.inputError ? 2 : result.ok ? 0 : 1);
}
