// Runs the SDK against a live userphone in dev mode. sdk_test.go starts one
// and sets:
//
//   USERPHONE_SDK_BASE_URL  the API's base URL, e.g. http://127.0.0.1:8080/user/2021-2
//   USERPHONE_SDK_DATA_DIR  the server's data directory (dev signing key, outbox.jsonl)
//   USERPHONE_SDK_BIN       the userphone binary, to mint tokens with `userphone token`
//
// sdk_test.go runs it twice: straight against the server, and through a
// Prism proxy (the base URL is then Prism's, without the base path). Prism
// reports what breaks the spec in an sl-violations header; checkedFetch
// fails the run on any response violation, and on a request violation the
// server did not refuse too (a request the spec forbids, accepted).
//
// Each test has its own user and phone numbers, so the tests run at once and
// the per-user cool-down and per-number SMS limits never meet.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { createUserPhoneClient, type ApiError, type ErrorCode, type Result } from "../src/index.js";

const baseUrl = env("USERPHONE_SDK_BASE_URL");
const dataDir = env("USERPHONE_SDK_DATA_DIR");
const bin = env("USERPHONE_SDK_BIN");
// Set by sdk_test.go when baseUrl is a Prism proxy.
const viaPrism = process.env.USERPHONE_SDK_VIA_PRISM === "1";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through sdk_test.go (go test ./sdk/...), or see the README`);
  return value;
}

const SCOPE_CHECK = "user:users.phone:check";

interface User {
  sub: string;
  email: string;
}

function newUser(name: string): User {
  const sub = `sdk-${name}-${randomUUID().slice(0, 8)}`;
  return { sub, email: `${sub}@example.com` };
}

/** A dev token for user, signed with the server's key by `userphone token`. */
function mintToken(user: User, scope?: string): string {
  const args = ["token", "--sub", user.sub, "--email", user.email, ...(scope ? ["--scope", scope] : [])];
  return execFileSync(bin, args, {
    env: { ...process.env, USERPHONE_DATA_DIR: dataDir },
    encoding: "utf8",
  }).trim();
}

function clientFor(user: User, scope?: string) {
  return createUserPhoneClient({ baseUrl, token: mintToken(user, scope), fetch: checkedFetch });
}

interface Violation {
  location: string[];
  severity: string;
  message: string;
}

// What Prism found wrong, over all tests; empty without Prism.
const violations: string[] = [];

/** fetch, with Prism's sl-violations header (if any) checked. */
async function checkedFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const res = await fetch(input, init);
  const header = res.headers.get("sl-violations");
  if (header) {
    const method = input instanceof Request ? input.method : (init?.method ?? "GET");
    const url = input instanceof Request ? input.url : String(input);
    for (const v of JSON.parse(header) as Violation[]) {
      const refusedToo = v.location[0] === "request" && res.status >= 400 && res.status < 500;
      if (!refusedToo) violations.push(`${method} ${url} → ${res.status}: ${v.severity} at ${v.location.join(".")}: ${v.message}`);
    }
  }
  return res;
}

after(() => {
  assert.deepEqual(violations, [], "Prism reported contract violations");
});

/** The confirmation link, through the API's base URL (which may be a proxy's). */
function throughBaseUrl(link: string): URL {
  const url = new URL(link);
  const at = url.pathname.indexOf("/user/phone/confirm");
  assert.ok(at >= 0, `the link ${link} is not the confirmation page`);
  return new URL(baseUrl + url.pathname.slice(at) + url.search);
}

interface OutboxLine {
  channel: "email" | "sms";
  to: string;
  text: string;
  kind: string;
  subject?: string;
}

// How many messages to each recipient the tests have taken already.
const taken = new Map<string, number>();

/**
 * Waits (up to 5 s: messages leave through the delivery queue) for a message
 * to `to` that this test has not taken yet, and returns the newest.
 */
async function nextMessage(channel: OutboxLine["channel"], to: string): Promise<OutboxLine> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const lines = (await readOutbox()).filter((l) => l.channel === channel && l.to === to);
    const seen = taken.get(to) ?? 0;
    const newest = lines.at(-1);
    if (lines.length > seen && newest) {
      taken.set(to, lines.length);
      return newest;
    }
    if (Date.now() > deadline) throw new Error(`no new ${channel} to ${to} in the outbox within 5 s (${lines.length} old ones)`);
    await sleep(50);
  }
}

async function readOutbox(): Promise<OutboxLine[]> {
  let text: string;
  try {
    text = await readFile(join(dataDir, "outbox.jsonl"), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  // Only whole lines: the last one may still be being written.
  return text
    .split("\n")
    .slice(0, -1)
    .map((line) => JSON.parse(line) as OutboxLine);
}

/** The code comes first in the SMS text. */
async function nextCode(phoneNumber: string): Promise<string> {
  const sms = await nextMessage("sms", phoneNumber);
  const code = /^(\d{6})\b/.exec(sms.text)?.[1];
  assert.ok(code, `no code at the start of the SMS ${JSON.stringify(sms.text)}`);
  return code;
}

/** Asserts that res failed with status and code, and returns the error. */
function expectError(res: Result<unknown>, status: number, code: ErrorCode): ApiError {
  assert.equal(res.data, undefined, `expected ${status} ${code}, got ${res.status} with data`);
  assert.equal(res.status, status, JSON.stringify(res.error));
  const first = res.error?.errors[0];
  assert.ok(first, "the error document has no errors");
  assert.equal(first.code, code);
  assert.equal(first.status, String(status));
  assert.ok(first.id, "the error has no request id");
  return first;
}

describe("the userphone SDK against a live server", { concurrency: true }, () => {
  test("a whole flow: first number, verify, change with the e-mail link, verify the new one", async () => {
    const user = newUser("flow");
    const phone = clientFor(user);
    const first = "+4915112345601";
    const second = "+4915798765432";

    // 1. A first number: the SMS goes out at once.
    const started = await phone.updatePhone("+49 151 12345601");
    assert.ok(started.data, JSON.stringify(started.error));
    assert.equal(started.status, 201);
    assert.equal(started.data.data.id, user.sub);
    assert.equal(started.data.data.attributes.phoneNumber, first);
    assert.equal(started.data.data.attributes.verified, false);
    assert.equal(started.data.data.attributes.pendingChange?.status, "awaiting-code");

    // 2. Prove possession.
    const verified = await phone.verifyPhone(await nextCode(first));
    assert.ok(verified.data, JSON.stringify(verified.error));
    assert.equal(verified.status, 200);
    assert.deepEqual(verified.data.data.attributes, { phoneNumber: first, verified: true });

    const checked = await phone.checkPhone();
    assert.ok(checked.data, JSON.stringify(checked.error));
    assert.equal(checked.status, 200);
    assert.deepEqual(checked.data.data.attributes, { phoneNumber: first, verified: true });

    // 3. Another number: an e-mail link first; the verified number stays.
    const changing = await phone.updatePhone(second);
    assert.ok(changing.data, JSON.stringify(changing.error));
    assert.equal(changing.status, 201);
    const attrs = changing.data.data.attributes;
    assert.equal(attrs.phoneNumber, first);
    assert.equal(attrs.verified, true);
    assert.equal(attrs.pendingChange?.phoneNumber, second);
    assert.equal(attrs.pendingChange?.status, "awaiting-email-confirmation");
    assert.ok(!Number.isNaN(Date.parse(attrs.pendingChange?.expiresAt ?? "")), "expiresAt is not a date-time");

    // 4. The link opens a page (no change), whose form POSTs the token.
    const mail = await nextMessage("email", user.email);
    const link = /https?:\/\/\S*[?&]token=[A-Za-z0-9_-]+/.exec(mail.text)?.[0];
    assert.ok(link, `no link in the e-mail ${JSON.stringify(mail.text)}`);
    const page = await checkedFetch(throughBaseUrl(link));
    assert.equal(page.status, 200, await page.text());
    assert.match(page.headers.get("Content-Type") ?? "", /^text\/html/);
    const url = throughBaseUrl(link);
    const token = url.searchParams.get("token") ?? "";
    url.search = "";
    const confirmed = await checkedFetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token }).toString(),
    });
    assert.equal(confirmed.status, 200, await confirmed.text());

    // 5. The SMS to the new number; verify it.
    const moved = await phone.verifyPhone(await nextCode(second));
    assert.ok(moved.data, JSON.stringify(moved.error));
    assert.equal(moved.status, 200);
    assert.deepEqual(moved.data.data.attributes, { phoneNumber: second, verified: true });

    const final = await phone.checkPhone();
    assert.ok(final.data, JSON.stringify(final.error));
    assert.equal(final.status, 200);
    assert.deepEqual(final.data.data.attributes, { phoneNumber: second, verified: true });
  });

  test("a wrong code: 422 invalid-code with the attempts left", async () => {
    const phone = clientFor(newUser("wrong-code"));
    const number = "+4915112345603";
    const started = await phone.updatePhone(number);
    assert.equal(started.status, 201, JSON.stringify(started.error));
    const code = await nextCode(number);
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, "0");

    const res = await phone.verifyPhone(wrong);
    const err = expectError(res, 422, "invalid-code");
    assert.equal(err.meta?.remainingAttempts, 4);

    // The right code still works after a wrong one.
    const verified = await phone.verifyPhone(code);
    assert.equal(verified.status, 200, JSON.stringify(verified.error));
  });

  test("asking again within the cool-down: 429 rate-limited with Retry-After", async () => {
    const phone = clientFor(newUser("cool-down"));
    const number = "+4915112345606";
    const started = await phone.updatePhone(number);
    assert.equal(started.status, 201, JSON.stringify(started.error));
    const again = await phone.updatePhone(number);
    expectError(again, 429, "rate-limited");
    const retryAfter = Number(again.response.headers.get("Retry-After"));
    assert.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  });

  test("an invalid number: 422 invalid-phone-number pointing at the field", async () => {
    const phone = clientFor(newUser("invalid-number"));
    // Not a number at all, and a valid German fixed line (cannot get SMS).
    for (const number of ["+49 1234", "+49 30 12345678"]) {
      const err = expectError(await phone.updatePhone(number), 422, "invalid-phone-number");
      assert.equal(err.source?.pointer, "/data/attributes/phoneNumber", number);
    }
    expectError(await phone.checkPhone(), 404, "not-found");
  });

  test("verify before anything is pending, and before the e-mail link: 404, then 409", async () => {
    const user = newUser("early-verify");
    const phone = clientFor(user);
    expectError(await phone.verifyPhone("123456"), 404, "no-pending-verification");

    const first = "+4915112345607";
    assert.equal((await phone.updatePhone(first)).status, 201);
    assert.equal((await phone.verifyPhone(await nextCode(first))).status, 200);
    assert.equal((await phone.updatePhone("+4915112345608")).status, 201);
    expectError(await phone.verifyPhone("123456"), 409, "email-confirmation-pending");
  });

  test("a body that is not JSON, or breaks the schema, or has the wrong type: 400 and 415", async () => {
    const token = mintToken(newUser("bad-body"));
    const put = async (contentType: string, body: string) => {
      const res = await checkedFetch(`${baseUrl}/user/phone`, {
        method: "PUT",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": contentType },
        body,
      });
      const error = (await res.json()) as Result<unknown>["error"];
      return { status: res.status, error, data: undefined, response: res } as Result<unknown>;
    };
    const jsonApi = "application/vnd.api+json";
    // Prism answers a body that is not JSON itself (its own 400, not a
    // JSON:API document) and never forwards it: that case runs only straight.
    if (!viaPrism) expectError(await put(jsonApi, "{"), 400, "invalid-request");
    const missing = expectError(await put(jsonApi, `{"data":{"type":"phone"}}`), 400, "invalid-request");
    assert.match(missing.source?.pointer ?? "", /^\/data/);
    expectError(await put("application/json", `{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345609"}}}`), 415, "unsupported-media-type");
  });

  test("no token: 401 unauthorized", async () => {
    const phone = createUserPhoneClient({ baseUrl, fetch: checkedFetch });
    const res = await phone.checkPhone();
    expectError(res, 401, "unauthorized");
    assert.match(res.response.headers.get("WWW-Authenticate") ?? "", /^Bearer realm="userphone"/);
    expectError(await phone.updatePhone("+4915112345604"), 401, "unauthorized");
  });

  test("a check-only token cannot update: 403 insufficient-scope", async () => {
    const phone = clientFor(newUser("check-only"), SCOPE_CHECK);
    expectError(await phone.updatePhone("+4915112345605"), 403, "insufficient-scope");
    // The scope it has works.
    expectError(await phone.checkPhone(), 404, "not-found");
  });
});
