/**
 * The administration area, for users whose token carries an admin permission: users (find, see
 * and change roles, end sessions, turn off the two-step login of a user who lost every factor,
 * see their invoices and refund one with a credit note), roles, plans (create, edit, archive) and notification dead
 * letters (re-queue). Each section shows only with its permission; the API enforces them anyway.
 */
import { Fragment } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, ApiError } from "./api.ts";
import type { AdminInvoice, AdminPlan, AdminUser, CreditNote, FailedJob, Me, Page, Role } from "./api.ts";
import { asApiError, ErrorBox, Field, minorPerMajor, money, useSubmit } from "./ui.tsx";

export const ADMIN_SECTIONS = ["users", "roles", "plans", "dead-letters"] as const;
export type AdminSection = (typeof ADMIN_SECTIONS)[number];

const SECTIONS: Record<AdminSection, { title: string; permission: string }> = {
	users: { title: "Users", permission: "users:read" },
	roles: { title: "Roles", permission: "roles:read" },
	plans: { title: "Plans", permission: "billing:admin" },
	"dead-letters": { title: "Dead letters", permission: "notifications:admin" },
};

export const isAdmin = (me: Me) => Object.values(SECTIONS).some((s) => me.permissions.includes(s.permission));

export function Admin({ section }: { section: AdminSection }) {
	const [me, setMe] = useState<Me | null>(null);
	const [error, setError] = useState<ApiError | null>(null);
	useEffect(() => {
		api<Me>("GET", "/api/v1/auth/me").then(setMe, (err) => setError(asApiError(err)));
	}, []);
	if (error) return <ErrorBox error={error} />;
	if (!me) return <p aria-busy="true">Loading…</p>;
	const allowed = ADMIN_SECTIONS.filter((s) => me.permissions.includes(SECTIONS[s].permission));
	if (!allowed.includes(section)) {
		return (
			<section class="card">
				<h1>Not available</h1>
				<p>Your account does not have the permission {SECTIONS[section].permission} this page needs. <a href="/#/">Back to your account</a></p>
			</section>
		);
	}
	return (
		<div class="home">
			<nav class="tabs" aria-label="Administration">
				<a href="/#/">← Account</a>
				{allowed.map((s) => (
					<a key={s} href={`/#/admin/${s}`} aria-current={s === section ? "page" : undefined}>
						{SECTIONS[s].title}
					</a>
				))}
			</nav>
			{section === "users" && <Users canWriteRoles={me.permissions.includes("roles:write")} canEndSessions={me.permissions.includes("users:write")} canRefund={me.permissions.includes("billing:admin")} />}
			{section === "roles" && <Roles />}
			{section === "plans" && <Plans />}
			{section === "dead-letters" && <DeadLetters />}
		</div>
	);
}

/** A line that screen readers announce when it changes. */
const Notice = ({ text }: { text: string }) => <p class="notice" role="status">{text}</p>;

function Users({ canWriteRoles, canEndSessions, canRefund }: { canWriteRoles: boolean; canEndSessions: boolean; canRefund: boolean }) {
	const [query, setQuery] = useState("");
	const [users, setUsers] = useState<AdminUser[]>([]);
	const [next, setNext] = useState("");
	const [roles, setRoles] = useState<Role[]>([]);
	const [editing, setEditing] = useState<string | null>(null);
	const [billingOf, setBillingOf] = useState<string | null>(null);
	const [notice, setNotice] = useState("");
	const [error, setError] = useState<ApiError | null>(null);
	const page = (cursor = "") => api<Page<AdminUser>>("GET", `/api/v1/auth/users?${new URLSearchParams({ query, ...(cursor ? { cursor } : {}) }).toString()}`);
	const search = useSubmit(() => page(), (p) => {
		setUsers(p.items);
		setNext(p.nextCursor ?? "");
		setNotice(`${p.items.length}${p.nextCursor ? "+" : ""} user(s) found.`);
	});
	useEffect(() => {
		void search.submit();
		if (canWriteRoles) api<{ items: Role[] }>("GET", "/api/v1/auth/roles").then((r) => setRoles(r.items), (err) => setError(asApiError(err)));
	}, []);
	const more = async () => {
		try {
			const p = await page(next);
			setUsers((list) => [...list, ...p.items]);
			setNext(p.nextCursor ?? "");
		} catch (err) {
			setError(asApiError(err));
		}
	};
	/** Runs an action on one user: on success its row takes `patch` and `call`'s answer is announced; else its problem shows. */
	const changeUser = async (user: AdminUser, call: () => Promise<string>, patch: Partial<AdminUser>) => {
		setError(null);
		try {
			const notice = await call();
			setUsers((list) => list.map((u) => (u.id === user.id ? { ...u, ...patch } : u)));
			setNotice(notice);
		} catch (err) {
			setError(asApiError(err));
		}
	};
	const endSessions = (user: AdminUser) =>
		changeUser(user, async () => {
			const { revokedSessions } = await api<{ revokedSessions: number }>("DELETE", `/api/v1/auth/users/${user.id}/sessions`);
			return `${revokedSessions} session(s) of ${user.email} ended.`;
		}, { activeSessions: 0 });
	// For a user who lost the phone and the recovery codes, once they proved who they are another way.
	const resetTwoStep = async (user: AdminUser) => {
		if (!window.confirm(`Turn off the two-step login of ${user.email}${user.passkeys ? ` and remove their ${user.passkeys} passkey(s)` : ""}? Do this only once they have proven who they are; their sessions end.`)) return;
		await changeUser(user, async () => {
			await api("DELETE", `/api/v1/auth/users/${user.id}/mfa`);
			return `Two-step login of ${user.email} is off${user.passkeys ? ", their passkeys removed" : ""} and their sessions ended; they have been told by e-mail.`;
		}, { mfaEnabled: false, passkeys: 0 });
	};
	return (
		<section class="card wide" aria-labelledby="users-title">
			<h1 id="users-title">Users</h1>
			<form role="search" class="inline-form" onSubmit={search.onSubmit}>
				<Field label="Find users" name="query" type="search" value={query} onInput={setQuery} error={search.error} required={false} hint="Part of an e-mail address, or a user id. Empty: everyone." />
				<button type="submit" disabled={search.busy}>Search</button>
			</form>
			<ErrorBox error={search.error ?? error} fields />
			<Notice text={notice} />
			<div class="table-scroll">
				<table>
					<caption class="sr-only">Users, by e-mail address</caption>
					<thead><tr><th scope="col">E-mail</th><th scope="col">Name</th><th scope="col">Verified</th><th scope="col">Roles</th><th scope="col">Sessions</th><th scope="col">Two-step login</th><th scope="col">Actions</th></tr></thead>
					<tbody>
						{users.map((u) => (
							<Fragment key={u.id}>
								<tr>
									<td>{u.email}</td>
									<td>{u.name || "—"}</td>
									<td>{u.emailVerified ? "yes" : "no"}</td>
									<td>{u.roles.map((r) => <span key={r} class="badge">{r}</span>)}</td>
									<td>{u.activeSessions}</td>
									<td>{u.mfaEnabled ? "on" : "off"}{u.passkeys > 0 && <span class="hint"> · {u.passkeys} passkey{u.passkeys === 1 ? "" : "s"}</span>}</td>
									<td class="actions">
										{canWriteRoles && (
											<button type="button" class="secondary" aria-expanded={editing === u.id} aria-label={`Edit the roles of ${u.email}`} onClick={() => setEditing(editing === u.id ? null : u.id)}>Roles…</button>
										)}
										{canEndSessions && (
											<button type="button" class="secondary" aria-label={`End every session of ${u.email}`} disabled={u.activeSessions === 0} onClick={() => void endSessions(u)}>End sessions</button>
										)}
										{canEndSessions && (u.mfaEnabled || u.passkeys > 0) && (
											<button type="button" class="secondary" aria-label={`Turn off the two-step login of ${u.email}`} onClick={() => void resetTwoStep(u)}>Turn off two-step</button>
										)}
										{canRefund && (
											<button type="button" class="secondary" aria-expanded={billingOf === u.id} aria-label={`Invoices of ${u.email}`} onClick={() => setBillingOf(billingOf === u.id ? null : u.id)}>Invoices…</button>
										)}
									</td>
								</tr>
								{billingOf === u.id && (
									<tr>
										<td colSpan={7}>
											<UserInvoices user={u} onNotice={setNotice} />
										</td>
									</tr>
								)}
								{editing === u.id && (
									<tr>
										<td colSpan={7}>
											<RoleEditor
												user={u}
												roles={roles}
												onDone={(saved) => {
													setUsers((list) => list.map((x) => (x.id === u.id ? { ...x, roles: saved } : x)));
													setEditing(null);
													setNotice(`Roles of ${u.email}: ${saved.join(", ") || "none"}. They apply from the user's next token refresh.`);
												}}
											/>
										</td>
									</tr>
								)}
							</Fragment>
						))}
					</tbody>
				</table>
			</div>
			{next && <button type="button" class="secondary" onClick={() => void more()}>Show more</button>}
		</section>
	);
}

/** A user's invoices for the administration: what was paid and credited, and a credit note (refund) on a paid one. */
function UserInvoices({ user, onNotice }: { user: AdminUser; onNotice: (text: string) => void }) {
	const [invoices, setInvoices] = useState<AdminInvoice[] | null>(null);
	const [refunding, setRefunding] = useState<string | null>(null);
	const [error, setError] = useState<ApiError | null>(null);
	const [next, setNext] = useState("");
	const page = (cursor = "") => api<Page<AdminInvoice>>("GET", `/api/v1/billing/admin/invoices?${new URLSearchParams({ userId: user.id, ...(cursor ? { cursor } : {}) }).toString()}`);
	/** The first page again (after a refund), or the next one appended. */
	const load = (cursor = "") =>
		page(cursor).then((p) => {
			setInvoices((list) => (cursor ? [...(list ?? []), ...p.items] : p.items));
			setNext(p.nextCursor ?? "");
		}, (err) => setError(asApiError(err)));
	useEffect(() => void load(), [user.id]);
	return (
		<div class="user-invoices">
			<ErrorBox error={error} />
			{invoices === null ? <p>Loading invoices…</p> : invoices.length === 0 ? <p>{user.email} has no invoices.</p> : (
				<table>
					<caption>Invoices of {user.email}</caption>
					<thead><tr><th scope="col">Number</th><th scope="col">Status</th><th scope="col">Paid</th><th scope="col">Credited</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
					<tbody>
						{invoices.map((inv) => (
							<Fragment key={inv.id}>
								<tr>
									<td>{inv.number ?? "draft"}</td>
									<td>{inv.status}</td>
									<td>{money(inv.amountPaid, inv.currency)}</td>
									<td>
										{money(inv.amountCredited, inv.currency)}
										{inv.amountReturned > 0 && <span class="hint" data-testid="refund-returned"> ({money(inv.amountReturned, inv.currency)} refund came back: still owed)</span>}
									</td>
									<td>{inv.creditable > 0 && <button type="button" class="secondary" aria-expanded={refunding === inv.id} aria-label={`Refund on invoice ${inv.number ?? inv.id}`} onClick={() => setRefunding(refunding === inv.id ? null : inv.id)}>Refund…</button>}</td>
								</tr>
								{refunding === inv.id && (
									<tr>
										<td colSpan={5}>
											<RefundForm
												invoice={inv}
												onDone={(note) => {
													setRefunding(null);
													onNotice(note.status === "issued" ? `Credit note ${note.number} issued: ${money(note.amount, note.currency)} back to the card.` : note.status === "pending" ? `Credit note ${note.number} recorded; the refund completes when Stripe answers.` : `Credit note ${note.number} failed: ${note.failure ?? "refused by Stripe"}.`);
													void load();
												}}
											/>
										</td>
									</tr>
								)}
							</Fragment>
						))}
					</tbody>
				</table>
			)}
			{next && <button type="button" class="secondary" onClick={() => void load(next)}>Show more invoices</button>}
		</div>
	);
}

const REFUND_REASONS = [["order_change", "Order changed"], ["product_unsatisfactory", "Product unsatisfactory"], ["duplicate", "Charged twice"], ["fraudulent", "Fraudulent"]] as const;

/** A credit note on one invoice. The idempotency key is made when the form opens: sending it again (a timeout) cannot refund twice. */
function RefundForm({ invoice, onDone }: { invoice: AdminInvoice; onDone: (note: CreditNote) => void }) {
	const [amount, setAmount] = useState("");
	const [reason, setReason] = useState<string>("order_change");
	const [memo, setMemo] = useState("");
	// crypto.randomUUID exists only in secure contexts; random bytes do everywhere.
	const [key] = useState(() => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join(""));
	const refund = async () => {
		// Empty: all that is left. Anything else must be a plain positive amount with no more decimals
		// than the currency has, never silently "all" (NaN, Infinity) nor rounded.
		const typed = amount.trim().replace(",", ".");
		const digits = Math.log10(minorPerMajor(invoice.currency));
		const minor = typed ? Math.round(Number(typed) * minorPerMajor(invoice.currency)) : undefined;
		const plain = (digits ? new RegExp(`^\\d+(\\.\\d{1,${digits}})?$`) : /^\d+$/).test(typed);
		if (minor !== undefined && !(plain && Number.isSafeInteger(minor) && minor > 0)) {
			throw new ApiError({ status: 400, code: "VALIDATION_ERROR", detail: "The amount is not a plain positive number.", errors: [{ field: "amount", message: `enter an amount like ${digits ? `12.${"5".padEnd(digits, "0")}` : "1250"}, or leave it empty to refund all that is left` }] });
		}
		return api<CreditNote>("POST", `/api/v1/billing/admin/invoices/${invoice.id}/credit-notes`, { reason, idempotencyKey: key, ...(minor !== undefined ? { amount: minor } : {}), ...(memo.trim() ? { memo } : {}) });
	};
	const form = useSubmit(refund, onDone);
	return (
		<form class="refund-form" onSubmit={form.onSubmit}>
			<ErrorBox error={form.error} fields />
			<Field label={`Amount to refund (up to ${money(invoice.creditable, invoice.currency)}; empty: all of it)`} name="amount" value={amount} onInput={setAmount} required={false} error={form.error} />
			<p class="field">
				<label for="f-refund-reason">Reason</label>
				<select id="f-refund-reason" value={reason} onChange={(e) => setReason(e.currentTarget.value)}>
					{REFUND_REASONS.map(([value, label]) => <option key={value} value={value}>{label}</option>)}
				</select>
			</p>
			<Field label="Note for the records (not shown to the customer)" name="memo" value={memo} onInput={setMemo} required={false} error={form.error} />
			<button type="submit" disabled={form.busy}>Refund to the card</button>
		</form>
	);
}

function RoleEditor({ user, roles, onDone }: { user: AdminUser; roles: Role[]; onDone: (roles: string[]) => void }) {
	const [chosen, setChosen] = useState(new Set(user.roles));
	const form = useSubmit(() => api<{ roles: string[] }>("PUT", `/api/v1/auth/users/${user.id}/roles`, { roles: [...chosen] }), (r) => onDone(r.roles));
	const toggle = (role: string, on: boolean) => setChosen((set) => (on ? new Set([...set, role]) : new Set([...set].filter((r) => r !== role))));
	return (
		<form class="role-editor" onSubmit={form.onSubmit}>
			<fieldset>
				<legend>Roles of {user.email}</legend>
				{roles.map((r) => (
					<label key={r.name} class="check">
						<input type="checkbox" checked={chosen.has(r.name)} onChange={(e) => toggle(r.name, e.currentTarget.checked)} /> {r.name} <span class="hint">{r.description}</span>
					</label>
				))}
			</fieldset>
			<ErrorBox error={form.error} fields />
			<button type="submit" disabled={form.busy}>Save roles</button>
		</form>
	);
}

function Roles() {
	const [roles, setRoles] = useState<Role[] | null>(null);
	const [error, setError] = useState<ApiError | null>(null);
	useEffect(() => {
		api<{ items: Role[] }>("GET", "/api/v1/auth/roles").then((r) => setRoles(r.items), (err) => setError(asApiError(err)));
	}, []);
	return (
		<section class="card wide" aria-labelledby="roles-title">
			<h1 id="roles-title">Roles</h1>
			<ErrorBox error={error} />
			<p class="hint">A user's permissions are the union of their roles' permissions; they travel in the access token.</p>
			{roles && (
				<table>
					<thead><tr><th scope="col">Role</th><th scope="col">Description</th><th scope="col">Permissions</th><th scope="col">Users</th></tr></thead>
					<tbody>
						{roles.map((r) => (
							<tr key={r.name}>
								<th scope="row">{r.name}</th>
								<td>{r.description}</td>
								<td>{r.permissions.length ? r.permissions.map((p) => <code key={p} class="perm">{p}</code>) : "none"}</td>
								<td>{r.users}</td>
							</tr>
						))}
					</tbody>
				</table>
			)}
		</section>
	);
}

const priceLabel = (p: AdminPlan["prices"][number]) =>
	`${p.unitAmount !== undefined ? money(p.unitAmount, p.currency) : `${p.currency.toUpperCase()} tiered`} / ${p.interval}${p.model === "flat" ? "" : ` (${p.model.replace("_", " ")})`}`;

function Plans() {
	const [plans, setPlans] = useState<AdminPlan[]>([]);
	const [editing, setEditing] = useState<AdminPlan | "new" | null>(null);
	const [notice, setNotice] = useState("");
	const [error, setError] = useState<ApiError | null>(null);
	const load = () => {
		api<{ plans: AdminPlan[] }>("GET", "/api/v1/billing/admin/plans").then((r) => setPlans(r.plans), (err) => setError(asApiError(err)));
	};
	useEffect(load, []);
	const archive = async (plan: AdminPlan) => {
		setError(null);
		try {
			await api("DELETE", `/api/v1/billing/admin/plans/${plan.id}`);
			setNotice(`${plan.name} is archived: no longer offered; its subscribers keep it.`);
			load();
		} catch (err) {
			setError(asApiError(err));
		}
	};
	return (
		<section class="card wide" aria-labelledby="plans-title">
			<div class="row">
				<h1 id="plans-title">Plans</h1>
				<button type="button" onClick={() => setEditing("new")} aria-expanded={editing === "new"}>New plan</button>
			</div>
			<ErrorBox error={error} />
			<Notice text={notice} />
			{editing && (
				<PlanEditor
					plan={editing === "new" ? undefined : editing}
					onCancel={() => setEditing(null)}
					onSaved={(saved) => {
						setEditing(null);
						setNotice(`${saved.name} saved.`);
						load();
					}}
				/>
			)}
			<div class="table-scroll">
				<table>
					<thead><tr><th scope="col">Plan</th><th scope="col">Prices</th><th scope="col">Status</th><th scope="col">Actions</th></tr></thead>
					<tbody>
						{plans.map((p) => (
							<tr key={p.id}>
								<th scope="row">{p.name} <span class="hint">{p.id}</span></th>
								<td>{p.prices.map((price) => <div key={price.id}>{priceLabel(price)}</div>)}</td>
								<td><span class={`badge ${p.active ? "active" : ""}`}>{p.active ? "offered" : "archived"}</span></td>
								<td class="actions">
									<button type="button" class="secondary" aria-label={`Edit ${p.name}`} onClick={() => setEditing(p)}>Edit</button>
									{p.active && <button type="button" class="secondary" aria-label={`Archive ${p.name}`} onClick={() => void archive(p)}>Archive</button>}
								</td>
							</tr>
						))}
					</tbody>
				</table>
			</div>
		</section>
	);
}

const NEW_PRICES = [{ id: "plan-usd-month", currency: "usd", interval: "month", model: "flat", unitAmount: 1900 }];

/** Prices are edited as JSON: every price model (flat, per seat, tiered, metered) without a form per model. */
function PlanEditor({ plan, onSaved, onCancel }: { plan?: AdminPlan; onSaved: (p: AdminPlan) => void; onCancel: () => void }) {
	const [id, setId] = useState(plan?.id ?? "");
	const [name, setName] = useState(plan?.name ?? "");
	const [description, setDescription] = useState(plan?.description ?? "");
	const [features, setFeatures] = useState((plan?.features ?? []).join("\n"));
	const [trialDays, setTrialDays] = useState(plan?.trialDays?.toString() ?? "");
	const [active, setActive] = useState(plan?.active ?? true);
	const [prices, setPrices] = useState(JSON.stringify(plan?.prices ?? NEW_PRICES, null, 2));
	const form = useSubmit(async () => {
		let parsed: unknown;
		try {
			parsed = JSON.parse(prices);
		} catch (err) {
			throw new ApiError({ status: 400, code: "VALIDATION_ERROR", detail: "The prices are not valid JSON.", errors: [{ field: "prices", message: (err as Error).message }] });
		}
		const { id: _id, ...kept } = plan ?? ({} as Partial<AdminPlan>);
		const body = { ...kept, name, description, active, features: features.split("\n").map((f) => f.trim()).filter(Boolean), trialDays: trialDays === "" ? null : Number(trialDays), prices: parsed };
		return api<AdminPlan>("PUT", `/api/v1/billing/admin/plans/${encodeURIComponent(id)}`, body);
	}, onSaved);
	const textError = (field: string) => form.error?.problem.errors?.filter((e) => e.field === field || e.field.startsWith(`${field}[`) || e.field.startsWith(`${field}.`)).map((e) => `${e.field}: ${e.message}`).join("; ");
	return (
		<form class="plan-editor" onSubmit={form.onSubmit} aria-labelledby="plan-editor-title">
			<h2 id="plan-editor-title">{plan ? `Edit ${plan.name}` : "New plan"}</h2>
			<ErrorBox error={form.error} fields />
			<Field label="Plan id" name="id" value={id} onInput={setId} error={form.error} disabled={Boolean(plan)} hint="Lower-case letters, digits, - and _; subscriptions refer to it, so it never changes." />
			<Field label="Name" name="name" value={name} onInput={setName} error={form.error} />
			<Field label="Description" name="description" value={description} onInput={setDescription} error={form.error} required={false} />
			<TextArea label="Features, one per line" name="features" value={features} onInput={setFeatures} rows={3} message={textError("features")} />
			<Field label="Trial days" name="trialDays" type="number" value={trialDays} onInput={setTrialDays} error={form.error} required={false} hint="Empty: the platform default." />
			<p class="toggle">
				<label class="check"><input type="checkbox" checked={active} onChange={(e) => setActive(e.currentTarget.checked)} /> Offered to new customers</label>
			</p>
			<TextArea label="Prices (JSON)" name="prices" value={prices} onInput={setPrices} rows={8} message={textError("prices")} mono />
			<div class="actions">
				<button type="submit" disabled={form.busy}>Save plan</button>
				<button type="button" class="secondary" onClick={onCancel}>Cancel</button>
			</div>
		</form>
	);
}

function TextArea(props: { label: string; name: string; value: string; onInput: (v: string) => void; rows: number; message?: string; mono?: boolean }) {
	const id = `f-${props.name}`;
	return (
		<p class="field">
			<label for={id}>{props.label}</label>
			<textarea id={id} name={props.name} rows={props.rows} class={props.mono ? "mono" : undefined} value={props.value} aria-invalid={props.message ? "true" : undefined} aria-describedby={props.message ? `${id}-error` : undefined} onInput={(e) => props.onInput(e.currentTarget.value)} />
			{props.message && <span class="field-error" id={`${id}-error`}>{props.message}</span>}
		</p>
	);
}

const PAGE = 20;

function DeadLetters() {
	const [channel, setChannel] = useState<"email" | "push">("email");
	const [offset, setOffset] = useState(0);
	const [page, setPage] = useState<{ total: number; items: FailedJob[] } | null>(null);
	const [notice, setNotice] = useState("");
	const [error, setError] = useState<ApiError | null>(null);
	const load = () => {
		setError(null);
		api<{ total: number; items: FailedJob[] }>("GET", `/api/v1/notifications/admin/failed?channel=${channel}&offset=${offset}&limit=${PAGE}`).then(setPage, (err) => {
			setPage(null);
			setError(asApiError(err));
		});
	};
	useEffect(load, [channel, offset]);
	const retry = async (body: { jobId: string } | { all: true }) => {
		setError(null);
		try {
			const { retried } = await api<{ retried: number }>("POST", "/api/v1/notifications/admin/failed/retry", { channel, ...body });
			setNotice(`${retried} job(s) re-queued; each gets its full number of attempts again.`);
			load();
		} catch (err) {
			setError(asApiError(err));
		}
	};
	return (
		<section class="card wide" aria-labelledby="dead-title">
			<h1 id="dead-title">Dead letters</h1>
			<p class="hint">Notification deliveries that failed after every attempt, newest first. Fix the cause (provider, credentials, template), then re-queue. Event dead letters (RabbitMQ <code>dead-letter.&lt;type&gt;</code> queues) are for operators: REPL <code>events-dead-letters</code> and <code>events-replay</code>.</p>
			<div class="row">
				<p class="field">
					<label for="f-channel">Channel</label>
					<select id="f-channel" value={channel} onChange={(e) => { setChannel(e.currentTarget.value as "email" | "push"); setOffset(0); }}>
						<option value="email">E-mail</option>
						<option value="push">Web push</option>
					</select>
				</p>
				<button type="button" disabled={!page?.total} onClick={() => void retry({ all: true })}>Re-queue all</button>
			</div>
			<ErrorBox error={error} />
			<Notice text={notice} />
			{page && (
				<>
					<p data-testid="failed-total">{page.total} failed {channel === "email" ? "e-mail" : "push"} job(s)</p>
					<div class="table-scroll">
						<table>
							<thead><tr><th scope="col">Event</th><th scope="col">User</th><th scope="col">Attempts</th><th scope="col">Failed at</th><th scope="col">Reason</th><th scope="col">Actions</th></tr></thead>
							<tbody>
								{page.items.map((j) => (
									<tr key={j.id}>
										<td>{j.data.eventType}</td>
										<td><code>{j.data.userId}</code></td>
										<td>{j.attempts}</td>
										<td>{j.failedAt ? new Date(j.failedAt).toLocaleString() : "—"}</td>
										<td>{j.failedReason}</td>
										<td><button type="button" class="secondary" aria-label={`Re-queue the ${j.data.eventType} job of ${j.data.userId}`} onClick={() => void retry({ jobId: j.id })}>Re-queue</button></td>
									</tr>
								))}
							</tbody>
						</table>
					</div>
					<div class="actions">
						{offset > 0 && <button type="button" class="secondary" onClick={() => setOffset(Math.max(0, offset - PAGE))}>Newer</button>}
						{offset + PAGE < page.total && <button type="button" class="secondary" onClick={() => setOffset(offset + PAGE)}>Older</button>}
					</div>
				</>
			)}
		</section>
	);
}
