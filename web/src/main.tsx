/**
 * Backplane console: sign up, verify, log in and out, reset a password, see the plan and the
 * trial, change plan or pay through Stripe Checkout, list and download invoices, the in-app inbox
 * live over SSE, notification preferences and web push; for administrators users, roles, plans
 * and dead letters (admin.tsx). Every screen is a thin view over the public API.
 */
import { render } from "preact";
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { Admin, ADMIN_SECTIONS, isAdmin } from "./admin.tsx";
import type { AdminSection } from "./admin.tsx";
import { api, ApiError, renewTokens, session, streamAlerts } from "./api.ts";
import type { Alert, Invoice, Me, Page, Plan, Subscription } from "./api.ts";
import { Account } from "./account.tsx";
import { Passkeys, PasskeySignIn } from "./passkeys.tsx";
import { TwoStepLogin } from "./two-step.tsx";
import { PushOptIn } from "./push-opt-in.tsx";
import { Sessions } from "./sessions.tsx";
import { ErrorBox, Field, money, useSubmit } from "./ui.tsx";
import "./styles.css";

type Route = { name: "login" | "signup" | "forgot" | "reset" | "verify" | "confirm-email" | "revert-email" | "home"; token?: string } | { name: "admin"; section: AdminSection };

function currentRoute(): Route {
	const url = new URL(location.href);
	const token = url.searchParams.get("token") ?? undefined;
	if (url.pathname === "/reset-password") return { name: "reset", token };
	if (url.pathname === "/verify-email") return { name: "verify", token };
	if (url.pathname === "/confirm-email") return { name: "confirm-email", token };
	if (url.pathname === "/revert-email") return { name: "revert-email", token };
	const hash = location.hash.replace(/^#\/?/, "");
	if (hash === "signup" || hash === "forgot") return { name: hash };
	const admin = /^admin(?:\/([a-z-]+))?$/.exec(hash);
	if (admin && session.get()) return { name: "admin", section: ADMIN_SECTIONS.find((s) => s === admin[1]) ?? "users" };
	return session.get() ? { name: "home" } : { name: "login" };
}

function go(hash: string): void {
	history.pushState(null, "", `/#/${hash}`);
	dispatchEvent(new PopStateEvent("popstate"));
}

function App() {
	const [route, setRoute] = useState(currentRoute());
	useEffect(() => {
		const update = () => setRoute(currentRoute());
		addEventListener("popstate", update);
		addEventListener("hashchange", update);
		return () => {
			removeEventListener("popstate", update);
			removeEventListener("hashchange", update);
		};
	}, []);
	return (
		<div class="shell">
			<header>
				<a class="brand" href="/#/">Backplane</a>
			</header>
			<main>
				{route.name === "login" && <Login />}
				{route.name === "signup" && <Signup />}
				{route.name === "forgot" && <Forgot />}
				{route.name === "reset" && <Reset token={route.token} />}
				{route.name === "verify" && <Verify token={route.token} />}
				{route.name === "confirm-email" && <ConfirmEmail token={route.token} />}
				{route.name === "revert-email" && <RevertEmail token={route.token} />}
				{route.name === "admin" && <Admin section={route.section} />}
				{route.name === "home" && <Home />}
			</main>
		</div>
	);
}

function Login() {
	const [email, setEmail] = useState("");
	const [password, setPassword] = useState("");
	const [mfaToken, setMfaToken] = useState<string | null>(null);
	const signedIn = (tokens: { accessToken: string; refreshToken: string }) => {
		session.set(tokens);
		go("");
	};
	const form = useSubmit(async () => {
		try {
			return await api<{ accessToken: string; refreshToken: string }>("POST", "/api/v1/auth/login", { email, password });
		} catch (err) {
			// Two-step login is on: the password was right, a code comes next.
			if (err instanceof ApiError && err.problem.code === "MFA_REQUIRED" && err.problem.mfaToken) return err.problem.mfaToken;
			throw err;
		}
	}, (result) => (typeof result === "string" ? setMfaToken(result) : signedIn(result)));
	if (mfaToken) return <SecondStep mfaToken={mfaToken} onDone={signedIn} onExpired={() => setMfaToken(null)} />;
	return (
		<form class="card" onSubmit={form.onSubmit} aria-labelledby="login-title">
			<h1 id="login-title">Log in</h1>
			<ErrorBox error={form.error} />
			<Field label="E-mail" name="email" type="email" autocomplete="email" value={email} onInput={setEmail} error={form.error} />
			<Field label="Password" name="password" type="password" autocomplete="current-password" value={password} onInput={setPassword} error={form.error} />
			<button type="submit" disabled={form.busy}>Log in</button>
			<PasskeySignIn onDone={signedIn} />
			<nav class="links">
				<a href="/#/signup">Create an account</a> · <a href="/#/forgot">Forgot your password?</a>
			</nav>
		</form>
	);
}

/** The second step of a login with two-step login on: a code from the app, or a recovery code. */
function SecondStep({ mfaToken, onDone, onExpired }: { mfaToken: string; onDone: (tokens: { accessToken: string; refreshToken: string }) => void; onExpired: () => void }) {
	const [code, setCode] = useState("");
	const [useRecovery, setUseRecovery] = useState(false);
	const form = useSubmit(async () => {
		try {
			return await api<{ accessToken: string; refreshToken: string }>("POST", "/api/v1/auth/login/mfa", useRecovery ? { mfaToken, recoveryCode: code } : { mfaToken, code });
		} catch (err) {
			// Expired, or five wrong codes: back to the password.
			if (err instanceof ApiError && err.problem.code === "INVALID_MFA_TOKEN") onExpired();
			throw err;
		}
	}, onDone);
	return (
		<form class="card" onSubmit={form.onSubmit} aria-labelledby="second-step-title">
			<h1 id="second-step-title">Two-step login</h1>
			<ErrorBox error={form.error} />
			{useRecovery ? (
				<Field label="Recovery code" name="recoveryCode" autocomplete="off" value={code} onInput={setCode} error={form.error} />
			) : (
				<Field label="Code from your authenticator app" name="code" autocomplete="one-time-code" value={code} onInput={setCode} error={form.error} />
			)}
			<button type="submit" disabled={form.busy}>Continue</button>
			<nav class="links">
				<a href="/#/login" onClick={(e) => (e.preventDefault(), setCode(""), setUseRecovery(!useRecovery))}>{useRecovery ? "Use a code from the app" : "Use a recovery code instead"}</a>
			</nav>
		</form>
	);
}

function Signup() {
	const [name, setName] = useState("");
	const [email, setEmail] = useState("");
	const [password, setPassword] = useState("");
	const form = useSubmit(async () => {
		await api("POST", "/api/v1/auth/register", { name, email, password });
		return api<{ accessToken: string; refreshToken: string }>("POST", "/api/v1/auth/login", { email, password });
	}, (tokens) => {
		session.set(tokens);
		go("");
	});
	return (
		<form class="card" onSubmit={form.onSubmit} aria-labelledby="signup-title">
			<h1 id="signup-title">Create your account</h1>
			<ErrorBox error={form.error} />
			<Field label="Name" name="name" autocomplete="name" value={name} onInput={setName} error={form.error} />
			<Field label="E-mail" name="email" type="email" autocomplete="email" value={email} onInput={setEmail} error={form.error} />
			<Field label="Password (at least 8 characters; a passphrase is best)" name="password" type="password" autocomplete="new-password" value={password} onInput={setPassword} error={form.error} />
			<button type="submit" disabled={form.busy}>Sign up</button>
			<nav class="links">
				<a href="/#/login">I already have an account</a>
			</nav>
		</form>
	);
}

function Forgot() {
	const [email, setEmail] = useState("");
	const [sent, setSent] = useState(false);
	const form = useSubmit(() => api("POST", "/api/v1/auth/password/forgot", { email }), () => setSent(true));
	if (sent) return <section class="card"><h1>Check your inbox</h1><p>If an account exists for {email}, we sent it a link to choose a new password. The link works once, for 30 minutes.</p></section>;
	return (
		<form class="card" onSubmit={form.onSubmit} aria-labelledby="forgot-title">
			<h1 id="forgot-title">Reset your password</h1>
			<ErrorBox error={form.error} />
			<Field label="E-mail" name="email" type="email" autocomplete="email" value={email} onInput={setEmail} error={form.error} />
			<button type="submit" disabled={form.busy}>Send the link</button>
		</form>
	);
}

function Reset({ token }: { token?: string }) {
	const [password, setPassword] = useState("");
	const [done, setDone] = useState(false);
	const form = useSubmit(() => api("POST", "/api/v1/auth/password/reset", { token, password }), () => setDone(true));
	if (done) return <section class="card"><h1>Password changed</h1><p>Every session was ended. <a href="/#/login">Log in</a> with your new password.</p></section>;
	return (
		<form class="card" onSubmit={form.onSubmit} aria-labelledby="reset-title">
			<h1 id="reset-title">Choose a new password</h1>
			<ErrorBox error={form.error} />
			<Field label="New password" name="password" type="password" autocomplete="new-password" value={password} onInput={setPassword} error={form.error} />
			<button type="submit" disabled={form.busy}>Set the password</button>
		</form>
	);
}

function Verify({ token }: { token?: string }) {
	const [state, setState] = useState<"working" | "ok" | ApiError>("working");
	useEffect(() => {
		api("POST", "/api/v1/auth/verify-email", { token }).then(() => setState("ok"), (err: ApiError) => setState(err));
	}, [token]);
	return (
		<section class="card">
			<h1>E-mail verification</h1>
			{state === "working" && <p>Checking your link…</p>}
			{state === "ok" && <p>Your e-mail address is verified. <a href="/#/">Continue</a></p>}
			{state instanceof ApiError && <ErrorBox error={state} />}
		</section>
	);
}

/**
 * An e-mailed link that moves the account (to a new address, or back to the one it left): the page
 * posts its token only on a click, so a mail scanner opening links cannot make the move.
 */
function MoveAccountLink({ token, id, title, text, button, done }: { token?: string; id: string; title: string; text: string; button: string; done: JSX.Element }) {
	const [moved, setMoved] = useState(false);
	const form = useSubmit(() => api("POST", "/api/v1/auth/verify-email", { token }), () => setMoved(true));
	if (moved) return done;
	return (
		<form class="card" onSubmit={form.onSubmit} aria-labelledby={id}>
			<h1 id={id}>{title}</h1>
			<ErrorBox error={form.error} />
			<p>{text}</p>
			<button type="submit" disabled={form.busy}>{button}</button>
		</form>
	);
}

const ConfirmEmail = ({ token }: { token?: string }) => (
	<MoveAccountLink
		token={token}
		id="confirm-email-title"
		title="Use this e-mail address?"
		text="Your account will use the address this link was sent to, and stop using its current one."
		button="Confirm the new address"
		done={<section class="card"><h1>New address confirmed</h1><p>Your account now uses this e-mail address; log in with it from now on. <a href="/#/">Continue</a></p></section>}
	/>
);

/** The link e-mailed to the address an account left: "this was not me" moves it back. */
const RevertEmail = ({ token }: { token?: string }) => (
	<MoveAccountLink
		token={token}
		id="revert-email-title"
		title="Take your account back?"
		text="The account will use this e-mail address again, and every session of it will end, wherever it is signed in."
		button="Move it back to this address"
		done={<section class="card"><h1>Your account is back</h1><p>It uses this e-mail address again, and every session was ended. Choose a new password now: whoever moved it knew the old one. <a href="/#/forgot">Reset your password</a></p></section>}
	/>
);

const daysLeft = (iso: string) => Math.max(0, Math.ceil((Date.parse(iso) - Date.now()) / 86_400_000));

function Home() {
	const [me, setMe] = useState<Me | null>(null);
	const [error, setError] = useState<ApiError | null>(null);
	useEffect(() => {
		api<Me>("GET", "/api/v1/auth/me").then(setMe, (err: ApiError) => (err.problem.status === 401 ? (session.set(null), go("login")) : setError(err)));
	}, []);
	const logout = async () => {
		const tokens = session.get();
		await api("POST", "/api/v1/auth/logout", { refreshToken: tokens?.refreshToken }).catch(() => undefined);
		session.set(null);
		go("login");
	};
	/** After a change to the second factor; a session that just set one up takes tokens that say so. */
	const reloadMe = async () => {
		if (me?.secondFactorRequired) await renewTokens();
		setMe(await api<Me>("GET", "/api/v1/auth/me"));
	};
	if (error) return <ErrorBox error={error} />;
	if (!me) return <p aria-busy="true">Loading…</p>;
	if (me.secondFactorRequired) {
		// USERS_REQUIRE_MFA: nothing else is open to this session until it has a second factor.
		return (
			<div class="home">
				<section key="setup" class="card wide" aria-labelledby="setup-title">
					<div class="row">
						<h1 id="setup-title">Set up two-step login to continue</h1>
						<button type="button" class="secondary" onClick={() => void logout()}>Log out</button>
					</div>
					<p role="status">Every account here needs a second factor: an authenticator app, or a passkey. Set one up below; the rest of your account opens once it is on.</p>
				</section>
				{/* Keyed like the dashboard's: the card keeps its state (the recovery codes on screen) when the dashboard opens. */}
				<TwoStepLogin key="two-step" me={me} onChanged={() => void reloadMe()} />
				<Passkeys key="passkeys" me={me} />
				<section key="passkey-continue" class="card wide" aria-labelledby="passkey-continue-title">
					<h2 id="passkey-continue-title">Added a passkey?</h2>
					<p>Sign in with it to continue.</p>
					<PasskeySignIn onDone={(tokens) => (session.set(tokens), void reloadMe())} />
				</section>
			</div>
		);
	}
	return (
		<div class="home">
			<section key="hello" class="card wide">
				<div class="row">
					<h1>Hello{me.name ? `, ${me.name}` : ""}</h1>
					<div class="actions">
						{isAdmin(me) && <a class="button secondary" href="/#/admin/users">Administration</a>}
						<button type="button" class="secondary" onClick={() => void logout()}>Log out</button>
					</div>
				</div>
				<p>{me.email} {me.emailVerified ? <span class="badge ok">verified</span> : <span class="badge">not verified</span>}</p>
			</section>
			<Billing key="billing" />
			<Inbox key="inbox" />
			<Preferences key="preferences" />
			<Account key="account" me={me} onSaved={setMe} />
			<TwoStepLogin key="two-step" me={me} onChanged={() => void reloadMe()} />
			<Passkeys key="passkeys" me={me} />
			<Sessions key="sessions" />
		</div>
	);
}

function Billing() {
	const [sub, setSub] = useState<Subscription | null>(null);
	const [plans, setPlans] = useState<Plan[]>([]);
	const [invoices, setInvoices] = useState<Invoice[]>([]);
	const [error, setError] = useState<ApiError | null>(null);
	useEffect(() => {
		let timer: ReturnType<typeof setTimeout> | undefined;
		// A new account's trial starts a moment after sign-up (billing reacts to user.created):
		// while there is none, ask again every 2 s, for at most 30 s.
		const loadSubscription = (triesLeft: number) =>
			api<Subscription>("GET", "/api/v1/billing/subscription").then(setSub, (err: unknown) => {
				setSub(null);
				if (err instanceof ApiError && err.problem.status === 404 && triesLeft > 0) timer = setTimeout(() => void loadSubscription(triesLeft - 1), 2_000);
			});
		void loadSubscription(15);
		api<{ plans: Plan[] }>("GET", "/api/v1/billing/plans").then((r) => setPlans(r.plans), setError);
		api<Page<Invoice>>("GET", "/api/v1/billing/invoices").then((r) => setInvoices(r.items), setError);
		return () => clearTimeout(timer);
	}, []);
	const checkout = async (planId: string) => {
		try {
			const { url } = await api<{ url: string }>("POST", "/api/v1/billing/checkout", { planId });
			location.assign(url);
		} catch (err) {
			setError(err as ApiError);
		}
	};
	const portal = async () => {
		try {
			const { url } = await api<{ url: string }>("POST", "/api/v1/billing/portal");
			location.assign(url);
		} catch (err) {
			setError(err as ApiError);
		}
	};
	// One attempt now (after the card was updated); a decline comes back as a problem with the reason.
	const pay = async (invoice: Invoice) => {
		setError(null);
		try {
			const paid = await api<Invoice>("POST", `/api/v1/billing/invoices/${invoice.id}/pay`);
			setInvoices((list) => list.map((i) => (i.id === paid.id ? paid : i)));
			setSub(await api<Subscription>("GET", "/api/v1/billing/subscription"));
		} catch (err) {
			setError(err as ApiError);
			api<Page<Invoice>>("GET", "/api/v1/billing/invoices").then((r) => setInvoices(r.items), () => undefined);
		}
	};
	const download = async (invoice: Invoice) => {
		const tokens = session.get();
		const res = await fetch(`/api/v1/billing/invoices/${invoice.id}/pdf`, { headers: { authorization: `Bearer ${tokens?.accessToken ?? ""}` } });
		if (!res.ok) return setError(new ApiError((await res.json()) as ApiError["problem"]));
		const link = document.createElement("a");
		link.href = URL.createObjectURL(await res.blob());
		link.download = `${invoice.number ?? invoice.id}.pdf`;
		link.click();
	};
	return (
		<section class="card wide" aria-labelledby="plan-title">
			<h2 id="plan-title">Plan</h2>
			<ErrorBox error={error} />
			{sub ? (
				<p class="plan">
					<strong>{plans.find((p) => p.id === sub.planId)?.name ?? sub.planId}</strong> <span class={`badge ${sub.status}`}>{sub.status}</span>
					{sub.status === "trialing" && sub.trialEnd && <span> · {daysLeft(sub.trialEnd)} days of trial left</span>}
					{sub.cancelAtPeriodEnd && <span> · ends {new Date(sub.currentPeriodEnd ?? "").toLocaleDateString()}</span>}
				</p>
			) : (
				<p>No subscription yet.</p>
			)}
			{(sub?.status === "past_due" || sub?.status === "unpaid") && (
				<p class="warning" role="status">
					<span>We could not collect your last payment. Update your card, then pay the open invoice below.</span>
					<button type="button" class="secondary" onClick={() => void portal()}>Update card</button>
				</p>
			)}
			<ul class="plans">
				{plans.map((p) => (
					<li key={p.id}>
						<strong>{p.name}</strong>
						{p.prices?.[0]?.unitAmount !== undefined && <span> {money(p.prices[0].unitAmount, p.prices[0].currency)} / {p.prices[0].interval}</span>}
						{sub?.planId !== p.id ? (
							<button type="button" class="secondary" onClick={() => void checkout(p.id)}>Choose {p.name}</button>
						) : sub.status === "trialing" && !sub.billedByStripe && p.prices?.[0]?.unitAmount ? (
							// Keep the plan after the trial: Checkout collects the card.
							<button type="button" onClick={() => void checkout(p.id)}>Subscribe to {p.name}</button>
						) : (
							<span class="current">Your plan</span>
						)}
					</li>
				))}
			</ul>
			<h2>Invoices</h2>
			{invoices.length === 0 ? (
				<p>No invoices yet.</p>
			) : (
				<table>
					<thead><tr><th scope="col">Number</th><th scope="col">Status</th><th scope="col">Total</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
					<tbody>
						{invoices.map((inv) => (
							<tr key={inv.id}>
								<td>{inv.number ?? "draft"}</td>
								<td>
									{inv.status}
									{inv.status === "open" && inv.lastPaymentError && <span class="hint"> · payment failed ({inv.lastPaymentError}){inv.nextPaymentAttemptAt && `, next try ${new Date(inv.nextPaymentAttemptAt).toLocaleDateString()}`}</span>}
									{inv.amountCredited > 0 && <span class="hint" data-testid="invoice-refunded"> · {money(inv.amountCredited, inv.currency)} refunded</span>}
								</td>
								<td>{money(inv.total, inv.currency)}</td>
								<td>
									<div class="actions">
										<button type="button" class="link" onClick={() => void download(inv)} aria-label={`Download invoice ${inv.number ?? inv.id} as PDF`}>PDF</button>
										{inv.status === "open" && inv.amountDue > 0 && (inv.hostedInvoiceUrl
											? <a href={inv.hostedInvoiceUrl}>Pay</a>
											: <button type="button" class="link" onClick={() => void pay(inv)} aria-label={`Pay invoice ${inv.number ?? inv.id} now`}>Pay now</button>)}
									</div>
								</td>
							</tr>
						))}
					</tbody>
				</table>
			)}
		</section>
	);
}

function Inbox() {
	const [alerts, setAlerts] = useState<Alert[]>([]);
	const [unread, setUnread] = useState(0);
	useEffect(() => {
		api<Page<Alert>>("GET", "/api/v1/notifications").then((page) => {
			setAlerts(page.items);
			setUnread(page.unreadCount ?? page.items.filter((a) => !a.readAt).length);
		}, () => undefined);
		return streamAlerts(({ alert, unreadCount }) => {
			setAlerts((list) => [alert, ...list.filter((a) => a.id !== alert.id)]);
			setUnread(unreadCount);
		});
	}, []);
	const readAll = async () => {
		await api("POST", "/api/v1/notifications/read-all");
		setAlerts((list) => list.map((a) => ({ ...a, readAt: a.readAt ?? new Date().toISOString() })));
		setUnread(0);
	};
	return (
		<section class="card wide" aria-labelledby="inbox-title">
			<div class="row">
				<h2 id="inbox-title">Inbox <span class="badge count" aria-label={`${unread} unread`} data-testid="unread">{unread}</span></h2>
				<button type="button" class="secondary" onClick={() => void readAll()} disabled={unread === 0}>Mark all read</button>
			</div>
			<ul class="alerts" aria-live="polite">
				{alerts.map((a) => (
					<li key={a.id} class={a.readAt ? "read" : "unread"}>
						<strong>{a.title}</strong>
						<p>{a.body}</p>
						<time dateTime={a.createdAt}>{new Date(a.createdAt).toLocaleString()}</time>
					</li>
				))}
			</ul>
		</section>
	);
}

type Preferences = { channels?: Record<string, boolean>; categories?: Record<string, { locked: boolean; channels: Record<string, boolean> }> };

function Preferences() {
	const [prefs, setPrefs] = useState<Preferences | null>(null);
	const [error, setError] = useState<ApiError | null>(null);
	useEffect(() => {
		api<Preferences>("GET", "/api/v1/notifications/preferences").then(setPrefs, setError);
	}, []);
	const toggle = async (channel: string, on: boolean) => {
		try {
			setPrefs(await api<Preferences>("PUT", "/api/v1/notifications/preferences", { channels: { [channel]: on } }));
		} catch (err) {
			setError(err as ApiError);
		}
	};
	return (
		<section class="card wide" aria-labelledby="prefs-title">
			<h2 id="prefs-title">Notifications</h2>
			<ErrorBox error={error} />
			{prefs?.channels &&
				Object.entries(prefs.channels).map(([channel, on]) => (
					<p key={channel} class="toggle">
						<label>
							<input type="checkbox" checked={on} onChange={(e) => void toggle(channel, e.currentTarget.checked)} /> {channel.replace("_", "-")}
						</label>
					</p>
				))}
			<p class="hint">Security messages (password and sign-in) are always sent.</p>
			<PushOptIn />
		</section>
	);
}

render(<App />, document.getElementById("app")!);
