/**
 * USERS_REQUIRE_MFA in the console (Chromium): an account signed in with the password alone sees
 * only how to set up a second factor; once the authenticator app is confirmed, the dashboard
 * opens without signing in again, and the recovery codes stay on screen until saved.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConsolePlatform } from "../support/console.ts";
import type { ConsolePlatform } from "../support/console.ts";
import { PASSWORD as password } from "../support/console.ts";
import { totpCode } from "../support/totp.ts";

describe("two-step login required of every user, in Chromium", () => {
	let platform: ConsolePlatform;

	beforeAll(async () => {
		platform = await startConsolePlatform("webmfa", { USERS_REQUIRE_MFA: "true" });
	});
	afterAll(async () => {
		await platform?.close();
	});

	it("shows a password-only session the set-up alone, then the dashboard once the app's code is confirmed", async () => {
		const user = await platform.register("mfa");
		const page = await platform.browser.newPage({ viewport: { width: 1100, height: 1600 } });
		await page.goto(`${platform.base}/#/login`);
		await page.getByLabel("E-mail").fill(user.email);
		await page.getByLabel("Password").fill(password);
		await page.getByRole("button", { name: "Log in" }).click();
		await page.getByRole("heading", { name: "Set up two-step login to continue" }).waitFor();
		expect(await page.getByRole("heading", { name: "Plan" }).count()).toBe(0);
		await platform.shot(page, "mfa-required");

		await page.getByLabel("Password to turn it on").fill(password);
		await page.getByRole("button", { name: "Set up two-step login" }).click();
		const secret = (await page.getByTestId("totp-secret").textContent())!;
		await page.getByLabel("Code from the app").fill(totpCode(secret));
		await page.getByRole("button", { name: "Confirm the code" }).click();
		// The dashboard opens in place, the codes still shown.
		await page.getByRole("heading", { name: "Plan" }).waitFor({ timeout: 15_000 });
		expect(await page.getByTestId("recovery-codes").locator("li").count()).toBe(10);
		expect(await page.getByRole("heading", { name: "Set up two-step login to continue" }).count()).toBe(0);
		await page.close();
	});
});
