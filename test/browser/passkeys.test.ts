/**
 * Passkeys in Chromium against the whole platform, with Chromium's own virtual authenticator (a
 * platform authenticator with user verification, driven over the DevTools protocol's WebAuthn
 * domain): the console adds a passkey after the password, the user is told by e-mail, signs in
 * with it without an e-mail address, removes it, and a prompt the user does not complete changes
 * nothing. On an IP address, where browsers refuse passkeys, the console says where to go instead.
 */
import type { CDPSession, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/chaos.ts";
import { startConsolePlatform, PASSWORD as password } from "../support/console.ts";
import type { ConsolePlatform } from "../support/console.ts";
import { eventually } from "../support/infra.ts";
import { messagesTo } from "../support/mailpit.ts";

describe("passkeys in Chromium", () => {
	let platform: ConsolePlatform;
	/** The console on localhost: passkeys are bound to a domain name, never to 127.0.0.1. */
	let site: string;

	beforeAll(async () => {
		const port = await freePort();
		site = `http://localhost:${port}`;
		platform = await startConsolePlatform("webpk", { GATEWAY_PORT: String(port), WEBAUTHN_ORIGINS: site });
	});
	afterAll(async () => {
		await platform?.close();
	});

	/** A device with a fingerprint reader: Chromium's virtual platform authenticator. */
	async function withAuthenticator(page: Page): Promise<{ cdp: CDPSession; authenticatorId: string }> {
		const cdp = await page.context().newCDPSession(page);
		await cdp.send("WebAuthn.enable", { enableUI: false });
		const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
			options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
		});
		return { cdp, authenticatorId };
	}

	it("adds a passkey after the password, signs in with it without an e-mail address, and removes it", async () => {
		const user = await platform.register("pk");
		const page = await platform.browser.newPage({ viewport: { width: 1100, height: 2400 } });
		const { cdp, authenticatorId } = await withAuthenticator(page);
		await page.goto(`${site}/#/login`);
		await page.getByLabel("E-mail").fill(user.email);
		await page.getByLabel("Password").fill(password);
		await page.getByRole("button", { name: "Log in" }).click();
		await page.getByRole("heading", { name: /^Hello/ }).waitFor();

		const card = page.getByRole("region", { name: "Passkeys" });
		await expect.poll(() => card.textContent()).toContain("No passkeys yet.");
		await page.getByLabel("Name of the passkey").fill("This laptop");
		await page.getByLabel("Password to add a passkey").fill("not my password");
		await page.getByRole("button", { name: "Add a passkey" }).click();
		await expect.poll(() => page.locator("#f-passkey-password-error").textContent()).toContain("not your current password");
		await page.getByLabel("Password to add a passkey").fill(password);
		await page.getByRole("button", { name: "Add a passkey" }).click();
		await expect.poll(() => card.getByRole("status").textContent(), { timeout: 10_000 }).toBe('Passkey "This laptop" added; you can sign in with it now.');
		await expect.poll(() => card.getByTestId("passkey").count()).toBe(1);
		expect(await card.getByTestId("passkey").textContent()).toContain("not used yet");
		// The authenticator holds one resident credential for this site.
		const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
		expect(credentials).toEqual([expect.objectContaining({ isResidentCredential: true, rpId: "localhost" })]);
		await card.scrollIntoViewIfNeeded();
		await platform.shot(page, "passkeys");
		await eventually(async () => (await messagesTo(user.email)).some((m) => m.Subject === "A passkey was added to your Backplane account"), 15_000, "the passkey e-mail");

		// Signed out, back in with the passkey alone.
		await page.getByRole("button", { name: "Log out" }).click();
		await page.getByRole("heading", { name: "Log in" }).waitFor();
		await page.getByRole("button", { name: "Sign in with a passkey" }).click();
		await page.getByRole("heading", { name: /^Hello/ }).waitFor();
		await expect.poll(() => card.getByTestId("passkey").textContent()).toContain("last used");

		// The user does not complete the prompt (no fingerprint): nothing happens, the console says why.
		await page.getByRole("button", { name: "Log out" }).click();
		await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: false });
		await page.getByRole("button", { name: "Sign in with a passkey" }).click();
		await expect.poll(() => page.getByRole("alert").textContent(), { timeout: 15_000 }).toContain("The passkey prompt was closed or timed out");
		await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: true });

		// Removed: the device still holds the key, the account no longer accepts it.
		await page.getByLabel("E-mail").fill(user.email);
		await page.getByLabel("Password").fill(password);
		await page.getByRole("button", { name: "Log in" }).click();
		await page.getByRole("heading", { name: /^Hello/ }).waitFor();
		await page.getByRole("button", { name: "Remove passkey This laptop" }).click();
		await expect.poll(() => card.textContent()).toContain("No passkeys yet.");
		await page.getByRole("button", { name: "Log out" }).click();
		await page.getByRole("button", { name: "Sign in with a passkey" }).click();
		await expect.poll(() => page.getByRole("alert").textContent(), { timeout: 10_000 }).toContain("The passkey could not be verified");
		await page.close();
	});

	it("says where passkeys work when the console is opened on an IP address", async () => {
		const page = await platform.browser.newPage();
		await page.goto(`${platform.base}/#/login`);
		await expect.poll(() => page.locator(".hint").first().textContent()).toContain(`Passkeys need the console at a domain name: open ${site}/#/login`);
		expect(await page.getByRole("button", { name: "Sign in with a passkey" }).count()).toBe(0);
		await page.close();
	});
});
