/**
 * User journeys through the gateway on the whole platform (four nodes, real servers): sign-up
 * produces the welcome e-mail and in-app alert; an open Server-Sent Events stream receives new
 * alerts live; the password-reset e-mail's link really resets the password; a new e-mail address
 * takes effect through the link sent to it, reaches billing, and the old address is told.
 */
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteMessages, getMessage, messagesTo } from "../support/mailpit.ts";
import { createBrowserSubscription } from "../support/push-service.ts";
import { totpCode } from "../support/totp.ts";
import { createTestDatabase, eventually, gatewayUrl, startNode, testEnv, uniqueId, waitForCluster } from "../support/infra.ts";

describe("user journeys through the gateway", () => {
	const nodes: ServiceBroker[] = [];
	const mailIds: string[] = [];
	let base: string;
	const json = { "content-type": "application/json" };
	const post = (path: string, body: unknown, token?: string) => fetch(`${base}${path}`, { method: "POST", headers: { ...json, ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
	const login = async (email: string, password: string) => ((await (await post("/api/v1/auth/login", { email, password })).json()) as { accessToken: string }).accessToken;
	const mailTo = (email: string, subject: RegExp) =>
		eventually(async () => (await messagesTo(email)).find((m) => subject.test(m.Subject)), 15_000, `an e-mail to ${email} matching ${subject}`);

	beforeAll(async () => {
		const env = testEnv(uniqueId("e2e"), { DATABASE_URL: await createTestDatabase(), PUBLIC_URL: "http://app.backplane.test" });
		for (const svc of ["auth", "billing", "notification"] as const) nodes.push(await startNode([svc], env));
		const gateway = await startNode(["gateway"], env);
		nodes.push(gateway);
		// Every node must know the gateway too: alerts are broadcast to the gateways it knows.
		await waitForCluster(nodes);
		base = gatewayUrl(gateway);
	});
	afterAll(async () => {
		await Promise.all(nodes.map((n) => n.stop()));
		await deleteMessages([...new Set(mailIds)]);
	});

	it("sign-up: welcome e-mail in the SMTP sink, welcome alert in the inbox, live alerts over SSE", async () => {
		const email = `${uniqueId("ada")}@example.com`;
		const password = "correct horse battery staple 42";
		const registered = await post("/api/v1/auth/register", { email, password, name: "Ada" });
		expect(registered.status).toBe(201);
		expect(registered.headers.get("location")).toBe("/api/v1/auth/me");

		const welcome = await mailTo(email, /welcome/i);
		mailIds.push(welcome.ID);
		const token = await login(email, password);
		const inbox = await eventually(async () => {
			const res = await fetch(`${base}/api/v1/notifications`, { headers: { authorization: `Bearer ${token}` } });
			const body = (await res.json()) as { items?: { title: string }[]; data?: { title: string }[] };
			const items = body.items ?? body.data ?? [];
			return items.find((a) => /welcome/i.test(a.title));
		}, 10_000, "the welcome alert in the inbox");
		expect(inbox.title).toMatch(/welcome/i);

		// Open a live stream, then cause a new alert (a password change) and read it from the stream.
		const stream = await fetch(`${base}/api/v1/notifications/stream`, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" } });
		expect(stream.status).toBe(200);
		expect(stream.headers.get("content-type")).toContain("text/event-stream");
		const reader = stream.body!.getReader();
		const newPassword = "another very long passphrase 7";
		expect((await post("/api/v1/auth/password/change", { currentPassword: password, newPassword, keepOtherSessions: true }, token)).status).toBe(204);
		let received = "";
		const deadline = Date.now() + 10_000;
		while (!received.includes("event: alert") && Date.now() < deadline) {
			const chunk: { value?: Uint8Array } = await Promise.race([reader.read(), new Promise<{ value?: undefined }>((r) => setTimeout(() => r({}), deadline - Date.now()))]);
			if (chunk.value) received += new TextDecoder().decode(chunk.value);
		}
		await reader.cancel();
		expect(received).toContain("event: alert");
		const data = JSON.parse(received.split("event: alert\n")[1]!.split("\n")[0]!.replace(/^data: /, "")) as { alert: { category: string }; unreadCount: number };
		expect(data.alert.category).toBe("security");
		expect(data.unreadCount).toBeGreaterThanOrEqual(2);
		mailIds.push(...(await messagesTo(email)).map((m) => m.ID));
	});

	it("password reset: the e-mailed link resets the password and the old one stops working", async () => {
		const email = `${uniqueId("reset")}@example.com`;
		const password = "correct horse battery staple 42";
		expect((await post("/api/v1/auth/register", { email, password })).status).toBe(201);
		expect((await post("/api/v1/auth/password/forgot", { email })).status).toBe(202);

		const mail = await mailTo(email, /reset/i);
		const message = await getMessage(mail.ID);
		const link = /https?:\/\/\S+reset-password\?token=[A-Za-z0-9_-]+/.exec(message.Text)?.[0];
		expect(link).toBeDefined();
		expect(link!.startsWith("http://app.backplane.test/")).toBe(true);
		const token = new URL(link!).searchParams.get("token");

		const newPassword = "a brand new long passphrase 9";
		expect((await post("/api/v1/auth/password/reset", { token, password: newPassword })).status).toBe(204);
		expect((await post("/api/v1/auth/login", { email, password })).status).toBe(401);
		expect((await post("/api/v1/auth/login", { email, password: newPassword })).status).toBe(200);
		// The link is single-use.
		expect((await post("/api/v1/auth/password/reset", { token, password: "yet another long passphrase" })).status).toBeGreaterThanOrEqual(400);
		mailIds.push(...(await messagesTo(email)).map((m) => m.ID));
	});

	it("profile and e-mail change: the link sent to the new address moves the account; the old address is told; billing follows", async () => {
		const email = `${uniqueId("move")}@example.com`;
		const newEmail = `${uniqueId("moved")}@example.org`;
		const password = "correct horse battery staple 42";
		const reg = await post("/api/v1/auth/register", { email, password, name: "Ada" });
		const userId = ((await reg.json()) as { user: { id: string } }).user.id;
		const token = await login(email, password);
		// The old address is verified: only a proven address gets the way back after a move.
		const welcome = await mailTo(email, /confirm your e-mail address/i);
		const verifyLink = /https?:\/\/\S+verify-email\?token=[A-Za-z0-9_-]+/.exec((await getMessage(welcome.ID)).Text)![0];
		expect((await post("/api/v1/auth/verify-email", { token: new URL(verifyLink).searchParams.get("token") })).status).toBe(204);
		const billing = nodes[1]!;
		await eventually(async () => (await billing.call<{ email: string } | null, object>("billing.getCustomer", { userId })) ?? undefined, 10_000, "the billing customer");

		const patchMe = (body: unknown) => fetch(`${base}/api/v1/auth/me`, { method: "PATCH", headers: { ...json, authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
		// A body without the name (or with it misspelt) changes nothing.
		expect((await patchMe({ nmae: "Eve" })).status).toBe(400);
		const patch = await patchMe({ name: "Ada Lovelace" });
		expect(patch.status).toBe(200);
		expect(await patch.json()).toMatchObject({ id: userId, email, name: "Ada Lovelace" });

		expect((await post("/api/v1/auth/email/change", { newEmail, password: "not my password at all" }, token)).status).toBe(400);
		expect((await post("/api/v1/auth/email/change", { newEmail }, token)).status).toBe(400);
		expect((await post("/api/v1/auth/email/change", { newEmail, password }, token)).status).toBe(202);
		const confirm = await mailTo(newEmail, /confirm your new e-mail/i);
		const link = /https?:\/\/\S+confirm-email\?token=[A-Za-z0-9_-]+/.exec((await getMessage(confirm.ID)).Text)?.[0];
		expect(link?.startsWith("http://app.backplane.test/")).toBe(true);
		// Until the link is followed the account keeps its address.
		const me = async () => (await (await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } })).json()) as { email: string; emailVerified: boolean; name: string };
		expect((await me()).email).toBe(email);

		expect((await post("/api/v1/auth/verify-email", { token: new URL(link!).searchParams.get("token") })).status).toBe(204);
		expect(await me()).toMatchObject({ email: newEmail, emailVerified: true, name: "Ada Lovelace" });
		const notice = await getMessage((await mailTo(email, /e-mail address was changed/i)).ID);
		expect(notice.Text).toContain(newEmail);
		const revert = /https?:\/\/\S+revert-email\?token=[A-Za-z0-9_-]+/.exec(notice.Text)?.[0];
		expect(revert?.startsWith("http://app.backplane.test/")).toBe(true);
		expect((await post("/api/v1/auth/login", { email: newEmail, password })).status).toBe(200);
		expect((await post("/api/v1/auth/login", { email, password })).status).toBe(401);
		const customer = await eventually(async () => {
			const c = await billing.call<{ email: string; name: string | null } | null, object>("billing.getCustomer", { userId });
			return c?.email === newEmail ? c : undefined;
		}, 10_000, "the billing customer's new address");
		expect(customer.name).toBe("Ada Lovelace");

		// "This was not me": the old address takes the account back, and every session ends.
		expect((await post("/api/v1/auth/verify-email", { token: new URL(revert!).searchParams.get("token") })).status).toBe(204);
		expect((await post("/api/v1/auth/login", { email, password })).status).toBe(200);
		await eventually(async () => ((await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } })).status === 401 ? true : undefined), 10_000, "the old session's token to be refused");
		mailIds.push(...(await messagesTo(email)).map((m) => m.ID), ...(await messagesTo(newEmail)).map((m) => m.ID));
	});

	it("two-step login: on with the password and a first code; login then answers 403 MFA_REQUIRED, and the code gives the tokens", async () => {
		const email = `${uniqueId("totp")}@example.com`;
		const password = "correct horse battery staple 42";
		expect((await post("/api/v1/auth/register", { email, password, name: "Ada" })).status).toBe(201);
		const token = await login(email, password);
		const started = await post("/api/v1/auth/mfa/totp", { password }, token);
		expect(started.status).toBe(200);
		const { secret, otpauthUrl } = (await started.json()) as { secret: string; otpauthUrl: string };
		expect(otpauthUrl).toContain(`secret=${secret}`);
		const confirmed = await post("/api/v1/auth/mfa/totp/confirm", { code: totpCode(secret) }, token);
		expect(confirmed.status).toBe(200);
		const { recoveryCodes } = (await confirmed.json()) as { recoveryCodes: string[] };
		expect(recoveryCodes).toHaveLength(10);
		await mailTo(email, /two-step login is on/i);

		const first = await post("/api/v1/auth/login", { email, password });
		expect(first.status).toBe(403);
		expect(first.headers.get("content-type")).toContain("application/problem+json");
		const problem = (await first.json()) as { code: string; mfaToken: string; mfaTokenExpiresIn: number };
		expect(problem).toMatchObject({ code: "MFA_REQUIRED", mfaTokenExpiresIn: 300 });
		expect((await post("/api/v1/auth/login/mfa", { mfaToken: problem.mfaToken })).status).toBe(400);
		expect((await post("/api/v1/auth/login/mfa", { mfaToken: problem.mfaToken, recoveryCode: "not-a-code" })).status).toBe(401);
		const second = await post("/api/v1/auth/login/mfa", { mfaToken: problem.mfaToken, recoveryCode: recoveryCodes[0] });
		expect(second.status).toBe(200);
		const tokens = (await second.json()) as { accessToken: string };
		const me = (await (await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${tokens.accessToken}` } })).json()) as { mfaEnabled: boolean };
		expect(me.mfaEnabled).toBe(true);

		expect((await post("/api/v1/auth/mfa/totp/disable", { password }, tokens.accessToken)).status).toBe(400);
		expect((await post("/api/v1/auth/mfa/totp/disable", { password, recoveryCode: recoveryCodes[1] }, tokens.accessToken)).status).toBe(204);
		expect((await post("/api/v1/auth/login", { email, password })).status).toBe(200);
		await mailTo(email, /two-step login was turned off/i);
		mailIds.push(...(await messagesTo(email)).map((m) => m.ID));
	});

	it("account deletion: needs the password, ends sessions at once, and erases the user's data in every service", async () => {
		const email = `${uniqueId("gone")}@example.com`;
		const password = "correct horse battery staple 42";
		const reg = await post("/api/v1/auth/register", { email, password });
		const userId = ((await reg.json()) as { user: { id: string } }).user.id;
		const token = await login(email, password);
		const billing = nodes[1]!;
		await eventually(async () => (await billing.call<{ email: string } | null, object>("billing.getCustomer", { userId })) ?? undefined, 10_000, "the billing customer");
		await eventually(async () => ((await billing.call<unknown[], object>("notification.listAlerts", { userId })).length ? true : undefined), 10_000, "the welcome alert");

		const del = (body: unknown) => fetch(`${base}/api/v1/auth/me`, { method: "DELETE", headers: { ...json, authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
		expect((await del({ password: "not my password at all" })).status).toBe(400);
		expect((await del({ password })).status).toBe(204);

		expect((await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
		expect((await post("/api/v1/auth/login", { email, password })).status).toBe(401);
		const customer = await eventually(async () => {
			const c = await billing.call<{ email: string; deletedAt?: string } | null, object>("billing.getCustomer", { userId });
			return c?.deletedAt ? c : undefined;
		}, 10_000, "the customer to be erased");
		expect(customer.email).toBe("");
		await eventually(async () => ((await billing.call<unknown[], object>("notification.listAlerts", { userId })).length === 0 ? true : undefined), 10_000, "the inbox to be erased");
		mailIds.push(...(await messagesTo(email)).map((m) => m.ID));
	});
	it("devices: a push subscription is created with its Location, read there, and removed by id by its owner only", async () => {
		const signUp = async (name: string) => {
			const email = `${uniqueId(name)}@example.com`;
			const password = "correct horse battery staple 42";
			expect((await post("/api/v1/auth/register", { email, password, name })).status).toBe(201);
			return login(email, password);
		};
		const [ada, bob] = [await signUp("ada"), await signUp("bob")];
		const auth = (token: string) => ({ authorization: `Bearer ${token}` });
		const phone = createBrowserSubscription(`https://fcm.googleapis.com/fcm/send/${uniqueId("phone")}`);

		const created = await post("/api/v1/notifications/push-subscriptions", { ...phone.subscription, deviceName: "Ada's phone" }, ada);
		expect(created.status).toBe(201);
		const device = (await created.json()) as { id: string };
		const location = created.headers.get("location");
		expect(location).toBe(`/api/v1/notifications/push-subscriptions/${device.id}`);
		const read = await fetch(`${base}${location}`, { headers: auth(ada) });
		expect(read.status).toBe(200);
		expect(await read.json()).toEqual({ id: device.id, deviceName: "Ada's phone", createdAt: expect.any(String) as unknown, pushService: "https://fcm.googleapis.com" });

		// Someone else's device does not exist for Bob, to read or to remove.
		expect((await fetch(`${base}${location}`, { headers: auth(bob) })).status).toBe(404);
		expect((await fetch(`${base}${location}`, { method: "DELETE", headers: auth(bob) })).status).toBe(404);
		expect((await fetch(`${base}/api/v1/notifications/push-subscriptions/not-an-id`, { headers: auth(ada) })).status).toBe(400);

		const removed = await fetch(`${base}${location}`, { method: "DELETE", headers: auth(ada) });
		expect(removed.status).toBe(200);
		expect((await fetch(`${base}${location}`, { headers: auth(ada) })).status).toBe(404);
		expect(await (await fetch(`${base}/api/v1/notifications/push-subscriptions`, { headers: auth(ada) })).json()).toEqual({ items: [] });

		// The OpenAPI document says what the API does: 201 with a Location, not 200.
		const spec = (await (await fetch(`${base}/api/openapi.json`)).json()) as { paths: Record<string, Record<string, { responses: Record<string, { headers?: object }> }>> };
		const responses = spec.paths["/api/v1/notifications/push-subscriptions"]!.post!.responses;
		expect(responses["201"]?.headers).toHaveProperty("Location");
		expect(responses).not.toHaveProperty("200");
		expect(Object.keys(spec.paths["/api/v1/notifications/push-subscriptions/{id}"]!).sort()).toEqual(["delete", "get"]);
	});
});
