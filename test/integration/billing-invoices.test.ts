/**
 * Invoices on the real MongoDB-wire server: numbers per year without gaps (concurrently and
 * after a crash mid-numbering), a PDF that a PDF tool opens with the right totals, and the
 * caller-scoped invoice actions.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { MongoClient } from "mongodb";
import type { Db } from "mongodb";
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderInvoiceHtml, renderInvoicePdf } from "../../services/billing/invoice-render.ts";
import { createDraft, finalizeInvoice, transitionInvoice } from "../../services/billing/invoices.ts";
import type { InvoiceLine } from "../../services/billing/invoices.ts";
import { uniqueId } from "../support/infra.ts";
import { billingEnv, startBillingNode, TestClock } from "../support/stripe.ts";

const run = promisify(execFile);
const seller = { name: "Backplane Ltd", address: "1 Main Street; Springfield", taxId: "GB123456789" };

function line(description: string, quantity: number, unitAmount: number, proration = false): InvoiceLine {
	return { description, quantity, unitAmount, amount: quantity * unitAmount, periodStart: new Date("2026-05-01T00:00:00Z"), periodEnd: new Date("2026-06-01T00:00:00Z"), proration };
}

describe("billing invoices", () => {
	const namespace = uniqueId("billinv");
	const clock = new TestClock(Date.parse("2026-05-10T09:00:00Z"));
	let node: ServiceBroker;
	let mongo: MongoClient;
	let db: Db;
	let tmp: string;
	const userId = uniqueId("u-");
	const as = (id: string) => ({ meta: { caller: { userId: id, sessionId: "s", roles: [], permissions: [] } } });
	const draft = (id: string, lines = [line("Starter", 1, 900)], owner = userId) =>
		createDraft(db, { id, userId: owner, subscriptionId: null, currency: "usd", seller, buyer: { name: "Ada Lovelace", email: "ada@example.com" }, lines, taxRates: [{ name: "VAT", rateBps: 2_000 }] }, clock.now());

	beforeAll(async () => {
		const env = billingEnv(namespace);
		node = await startBillingNode(env, clock);
		mongo = new MongoClient(env.MONGO_URL!, { retryWrites: false });
		db = mongo.db();
		tmp = await mkdtemp(path.join(os.tmpdir(), "invoice-"));
	});

	afterAll(async () => {
		await node?.stop();
		await db?.dropDatabase().catch(() => undefined);
		await mongo?.close();
		await rm(tmp, { recursive: true, force: true });
	});

	it("numbers invoices per year without gaps or duplicates, even finalized concurrently", async () => {
		const ids = Array.from({ length: 12 }, (_, i) => `in_conc_${i}`);
		for (const id of ids) await draft(id);
		const finalized = await Promise.all(ids.map((id) => finalizeInvoice(db, id, { now: clock.now() })));
		expect(finalized.map((i) => i.number).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `2026-${String(i + 1).padStart(6, "0")}`));
		expect(finalized.every((i) => i.status === "open")).toBe(true);
		// Finalizing again changes nothing.
		expect((await finalizeInvoice(db, ids[0]!, { now: clock.now() })).number).toBe(finalized[0]!.number);
	});

	it("gives a number reserved before a crash to its draft before the next one", async () => {
		await draft("in_crashed");
		await draft("in_after");
		// As if a node died right after reserving number 13 for in_crashed.
		await db.collection("counters").updateOne({ _id: "invoice:2026" as never }, { $set: { seq: 13, pending: { invoiceId: "in_crashed" } } });
		const after = await finalizeInvoice(db, "in_after", { now: clock.now() });
		expect(after.number).toBe("2026-000014");
		expect(await db.collection("invoices").findOne({ _id: "in_crashed" as never })).toMatchObject({ number: "2026-000013", status: "open" });
		expect(await db.collection("counters").findOne({ _id: "invoice:2026" as never })).toMatchObject({ seq: 14, pending: null });
	});

	it("starts again at 1 in a new year", async () => {
		await draft("in_next_year");
		expect((await finalizeInvoice(db, "in_next_year", { now: new Date("2027-01-01T00:00:01Z") })).number).toBe("2027-000001");
	});

	it("renders a PDF that opens, with the right totals", async () => {
		await draft("in_pdf", [line("Pro (monthly), per seat", 3, 2_900), line("Unused time on Starter", 1, -1_234, true)]);
		const invoice = await finalizeInvoice(db, "in_pdf", { now: clock.now() });
		expect(invoice).toMatchObject({ subtotal: 7_466, tax: 1_493, total: 8_959, amountDue: 8_959 });
		const pdf = await renderInvoicePdf(invoice);
		expect(pdf.subarray(0, 5).toString()).toBe("%PDF-");
		const file = path.join(tmp, "invoice.pdf");
		await writeFile(file, pdf);
		const { stdout: info } = await run("pdfinfo", [file]);
		expect(info).toMatch(/Pages:\s+1/);
		expect(info).toContain(`Invoice ${invoice.number}`);
		const { stdout: text } = await run("pdftotext", ["-layout", file, "-"]);
		const squeezed = text.replace(/[ \t]+/g, " ");
		expect(squeezed).toContain(`Invoice ${invoice.number}`);
		expect(squeezed).toContain("Backplane Ltd");
		expect(squeezed).toContain("Tax ID: GB123456789");
		expect(squeezed).toContain("Ada Lovelace");
		expect(squeezed).toMatch(/Pro \(monthly\), per seat.* 3 \$29\.00 \$87\.00/);
		expect(squeezed).toMatch(/Unused time on Starter.* 1 -\$12\.34 -\$12\.34/);
		expect(squeezed).toMatch(/Subtotal \$74\.66/);
		expect(squeezed).toMatch(/VAT \(20\.00% of \$74\.66\) \$14\.93/);
		expect(squeezed).toMatch(/Total \$89\.59/);
		expect(squeezed).toMatch(/Amount due \$89\.59/);
		expect(renderInvoiceHtml(invoice)).toContain("$89.59");
	});

	it("serves the caller's own invoices only: list by cursor, one, its PDF", async () => {
		const me = uniqueId("lister-");
		for (const id of ["in_a", "in_b", "in_c"]) {
			clock.advance(1_000);
			await draft(id, undefined, me);
			await finalizeInvoice(db, id, { now: clock.now() });
		}
		await draft("in_still_draft", undefined, me);
		await draft("in_other", undefined, "someone-else");
		await finalizeInvoice(db, "in_other", { now: clock.now() });
		expect(await transitionInvoice(db, "in_c", { to: "paid", event: "invoice.paid" }, { now: clock.now() })).toBe(true);
		expect(await transitionInvoice(db, "in_c", { to: "open" }, { now: clock.now() })).toBe(false);

		type Page = { items: { id: string; status: string; total: number }[]; nextCursor: string | null };
		const first = await node.call<Page, object>("billing.listInvoices", { limit: 2 }, as(me));
		expect(first.items.map((i) => i.id)).toEqual(["in_c", "in_b"]);
		expect(first.items[0]).toMatchObject({ status: "paid", total: 1_080 });
		const second = await node.call<Page, object>("billing.listInvoices", { limit: 10, cursor: first.nextCursor }, as(me));
		expect(second.items.map((i) => i.id)).not.toContain("in_still_draft");
		expect(second.items.map((i) => i.id)).not.toContain("in_other");
		expect(second.items[0]!.id).toBe("in_a");
		expect(second.nextCursor).toBeNull();

		expect(await node.call("billing.getInvoice", { id: "in_b" }, as(me))).toMatchObject({ id: "in_b", number: expect.stringMatching(/^2026-\d{6}$/) as string, subtotal: 900, tax: 180, total: 1_080 });
		await expect(node.call("billing.getInvoice", { id: "in_other" }, as(me))).rejects.toMatchObject({ code: 404 });
		await expect(node.call("billing.getInvoice", { id: "in_still_draft" }, as(me))).rejects.toMatchObject({ code: 404 });
		await expect(node.call("billing.invoicePdf", { id: "in_other" }, as(me))).rejects.toMatchObject({ code: 404 });
		await expect(node.call("billing.listInvoices", {})).rejects.toMatchObject({ code: 401 });

		const pdf = await node.call<Buffer, object>("billing.invoicePdf", { id: "in_b" }, as(me));
		expect(Buffer.isBuffer(pdf)).toBe(true);
		expect(pdf.subarray(0, 5).toString()).toBe("%PDF-");
	});

	it("gives money back on a paid invoice through the admin action (Stripe refunds it); the owner sees the credit note on the invoice", async () => {
		const owner = uniqueId("u-");
		await draft("in_credit", [line("Starter", 1, 900)], owner);
		await finalizeInvoice(db, "in_credit", { now: clock.now() });
		await transitionInvoice(db, "in_credit", { to: "paid", set: { stripePaymentIntentId: "pi_3MtwBwLkdIwHu7ix28a3tqPa" } }, { now: clock.now() });
		const admin = { meta: { caller: { userId: "admin-1", sessionId: "s", roles: ["admin"], permissions: ["billing:admin"] } } };
		const request = { id: "in_credit", amount: "300", reason: "duplicate", memo: " charged twice ", idempotencyKey: "support-ticket-981" };
		const note = await node.call<{ id: string; number: string; status: string; amount: number }, object>("billing.issueCreditNote", request, admin);
		expect(note).toMatchObject({ status: "issued", amount: 300, number: "CN-2026-000001", memo: "charged twice", issuedBy: "admin-1" });
		// The same request again (a retry after a timeout) is the same note.
		expect(await node.call("billing.issueCreditNote", request, admin)).toMatchObject({ id: note.id, status: "issued" });
		const seen = await node.call<{ amountCredited: number; creditNotes: Record<string, unknown>[] }, object>("billing.getInvoice", { id: "in_credit" }, as(owner));
		expect(seen).toMatchObject({ amountPaid: 1_080, amountCredited: 300, creditNotes: [{ id: note.id, number: note.number, status: "issued", reason: "duplicate" }] });
		// The owner does not see the administrator's memo.
		expect(seen.creditNotes[0]).not.toHaveProperty("memo");
		const listed = await node.call<{ items: { id: string; amountCredited: number }[] }, object>("billing.listInvoices", {}, as(owner));
		expect(listed.items.find((i) => i.id === "in_credit")?.amountCredited).toBe(300);
		// The invoice's documents show the note and what remains paid.
		const pdfFile = path.join(tmp, "credited.pdf");
		await writeFile(pdfFile, await node.call<Buffer, object>("billing.invoicePdf", { id: "in_credit" }, as(owner)));
		const text = (await run("pdftotext", ["-layout", pdfFile, "-"])).stdout.replace(/[ \t]+/g, " ");
		expect(text).toMatch(new RegExp(`Credit note ${note.number} \\(\\d{4}-\\d{2}-\\d{2}\\), refunded -\\$3\\.00`));
		expect(text).toMatch(/Paid after credits \$7\.80/);
		expect(await node.call<string, object>("billing.invoiceHtml", { id: "in_credit" }, as(owner))).toContain(`Credit note ${note.number}`);
		await expect(node.call("billing.issueCreditNote", { id: "in_credit", reason: "bored", idempotencyKey: "support-ticket-982" }, admin)).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
		await expect(node.call("billing.issueCreditNote", { id: "in_credit", reason: "duplicate" }, admin)).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
		// A null amount is not "all that is left".
		await expect(node.call("billing.issueCreditNote", { ...request, amount: null, idempotencyKey: "support-ticket-984" }, admin)).rejects.toMatchObject({ code: 400, type: "VALIDATION_ERROR" });
		// The billing node checks the permission itself too (middlewares/permissions.ts), not only the gateway.
		await expect(node.call("billing.issueCreditNote", { ...request, idempotencyKey: "support-ticket-983" }, as(owner))).rejects.toMatchObject({ code: 403, type: "MISSING_PERMISSION" });
	});
});
