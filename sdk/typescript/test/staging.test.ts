// The README's end-to-end test for frontend teams, as written there (section
// "For frontend teams: through the SMS step with a test number"); sdk_test.go
// runs it against a server started with USERPHONE_TEST_NUMBERS, and checks
// that the README still shows it word for word.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createUserPhoneClient } from "@pace/userphone-sdk";

// Staging runs with USERPHONE_TEST_NUMBERS=+4915112340001=424242: no SMS, a fixed code.
const phone = createUserPhoneClient({ baseUrl: process.env.STAGING_API_URL!, token: process.env.STAGING_TOKEN! });

test("a new user verifies their phone number", async () => {
  const asked = await phone.updatePhone("+49 151 12340001");
  assert.equal(asked.data?.data.attributes.pendingChange?.status, "awaiting-code");
  const verified = await phone.verifyPhone("424242");
  assert.equal(verified.data?.data.attributes.verified, true);
});
