// client.mjs BASE_URL MODEL - OpenAI's official client against alignd:
// completion, streamed completion, chat (plain and streamed), errors.
// Exits non-zero (with a message) on the first mismatch.
import OpenAI from "openai";
import assert from "node:assert/strict";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "test-key", maxRetries: 0, timeout: 60000 });

const c = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 32, temperature: 0 });
assert.equal(c.object, "text_completion");
assert.equal(c.choices[0].text, ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw");
assert.equal(c.choices[0].finish_reason, "length");
assert.equal(c.usage.completion_tokens, 32);

let streamed = "";
let chunks = 0;
const stream = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 32, temperature: 0, stream: true });
for await (const chunk of stream) {
  streamed += chunk.choices[0]?.text ?? "";
  chunks++;
}
assert.equal(streamed, c.choices[0].text);
assert.ok(chunks >= 10, `only ${chunks} chunks`);

const chat = await client.chat.completions.create({
  model, max_tokens: 16, temperature: 0,
  messages: [{ role: "system", content: "Tell a story." }, { role: "user", content: "Once upon a time" }],
});
assert.equal(chat.object, "chat.completion");
assert.equal(chat.choices[0].message.role, "assistant");
assert.equal(chat.usage.completion_tokens, 16);

let chatText = "";
const chatStream = await client.chat.completions.create({
  model, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
  messages: [{ role: "system", content: "Tell a story." }, { role: "user", content: "Once upon a time" }],
});
let usage = null;
for await (const chunk of chatStream) {
  chatText += chunk.choices[0]?.delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
assert.equal(chatText, chat.choices[0].message.content);
assert.equal(usage.completion_tokens, 16);

const models = await client.models.list();
assert.deepEqual(models.data.map((m) => m.id), [model]);

await assert.rejects(client.completions.create({ model: "no-such-model", prompt: "x" }),
  (e) => e.status === 404 && e.error?.code === "model_not_found");
await assert.rejects(client.completions.create({ model, prompt: "x", temperature: 9 }),
  (e) => e.status === 422 && e.error?.param === "temperature");
console.log("openai client: all checks passed");
