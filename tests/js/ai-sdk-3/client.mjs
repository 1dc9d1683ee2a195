// Entry point for this SDK version; the logic is shared in ../client-core.mjs.
import { readFileSync } from "node:fs";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import * as ai from "ai";
import { runClient } from "../client-core.mjs";

const version = (name) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), "utf8")).version;

await runClient({
  ai,
  createOpenAICompatible,
  sdk: { ai: version("ai"), "@ai-sdk/openai-compatible": version("@ai-sdk/openai-compatible") },
  // ai 7 refuses system messages inside `messages` unless this is set (ai 6 always allows them).
  callOptions: { allowSystemInMessages: true },
});
