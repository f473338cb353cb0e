/**
 * Passkeys: the account's list (add one with the password and the device's own prompt, remove
 * one), and signing in with one on the login page. The browser side of each WebAuthn ceremony is
 * SimpleWebAuthn's; the options come from the API and the answer goes back to it.
 */
import { browserSupportsWebAuthn, startAuthentication, startRegistration } from "@simplewebauthn/browser";
import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from "@simplewebauthn/browser";
import { useEffect, useState } from "preact/hooks";
import { api, ApiError } from "./api.ts";
import type { Me, Passkey } from "./api.ts";
import { asApiError, ErrorBox, Field, useListAction, useSubmit } from "./ui.tsx";

const when = (iso: string) => new Date(iso).toLocaleString();

/** Browsers bind passkeys to a domain name: on an IP address (http://127.0.0.1:4000) they refuse. */
const onAddress = () => /^[\d.]+$|:/.test(location.hostname);
const sameConsoleOnLocalhost = () => `${location.protocol}//localhost${location.port ? `:${location.port}` : ""}${location.pathname}${location.hash}`;

/** The device's prompt, cancelled or refused, as the console shows errors. */
async function onDevice<T>(ceremony: () => Promise<T>): Promise<T> {
	try {
		return await ceremony();
	} catch (err) {
		const name = (err as { name?: string }).name;
		const detail = name === "NotAllowedError" || name === "AbortError"
			? "The passkey prompt was closed or timed out; nothing was changed."
			: name === "InvalidStateError"
				? "This device already holds a passkey for your account."
				: `The device could not use a passkey: ${(err as Error).message}`;
		throw new ApiError({ status: 0, code: "PASSKEY_DEVICE", detail });
	}
}

/** Why passkeys cannot be used on this page, or null when they can. */
export function PasskeysUnavailable() {
	if (!browserSupportsWebAuthn()) return <p class="hint">This browser does not support passkeys.</p>;
	if (onAddress()) return <p class="hint">Passkeys need the console at a domain name: open <a href={sameConsoleOnLocalhost()}>{sameConsoleOnLocalhost()}</a>.</p>;
	return null;
}

const usable = () => browserSupportsWebAuthn() && !onAddress();

/** "Sign in with a passkey" on the login page: no e-mail address needed, the passkey names the account. */
export function PasskeySignIn({ onDone }: { onDone: (tokens: { accessToken: string; refreshToken: string }) => void }) {
	const signIn = useSubmit(async () => {
		const { flowId, options } = await api<{ flowId: string; options: PublicKeyCredentialRequestOptionsJSON }>("POST", "/api/v1/auth/login/passkey/options", {});
		const credential = await onDevice(() => startAuthentication({ optionsJSON: options }));
		return api<{ accessToken: string; refreshToken: string }>("POST", "/api/v1/auth/login/passkey", { flowId, credential });
	}, onDone);
	if (!usable()) return <PasskeysUnavailable />;
	return (
		<div class="passkey-sign-in">
			<ErrorBox error={signIn.error} />
			<button type="button" class="secondary" disabled={signIn.busy} onClick={() => void signIn.submit()}>Sign in with a passkey</button>
		</div>
	);
}

/** With two-step login on, adding a passkey (which skips the app's code at login) asks for a code too. */
export function Passkeys({ me }: { me: Me }) {
	const [passkeys, setPasskeys] = useState<Passkey[] | null>(null);
	const [name, setName] = useState("");
	const [password, setPassword] = useState("");
	const [code, setCode] = useState("");
	const [added, setAdded] = useState<string | null>(null);
	const { error, setError, busy, run } = useListAction(() => refresh());
	const refresh = async () => {
		try {
			setPasskeys((await api<{ items: Passkey[] }>("GET", "/api/v1/auth/passkeys")).items);
		} catch (err) {
			setError(asApiError(err));
		}
	};
	useEffect(() => void refresh(), []);
	const add = useSubmit(async () => {
		setAdded(null);
		// Six digits are a code from the app; anything else is taken for a recovery code.
		const factor = !me.mfaEnabled ? {} : /^\s*\d{6}\s*$/.test(code) ? { code } : { recoveryCode: code };
		const { flowId, options } = await api<{ flowId: string; options: PublicKeyCredentialCreationOptionsJSON }>("POST", "/api/v1/auth/passkeys/registration", { password, ...factor });
		const credential = await onDevice(() => startRegistration({ optionsJSON: options }));
		return api<Passkey>("POST", "/api/v1/auth/passkeys", { flowId, credential, ...(name.trim() ? { name } : {}) });
	}, (passkey) => {
		setPassword("");
		setCode("");
		setName("");
		setAdded(passkey.name);
		void refresh();
	});
	const remove = (passkey: Passkey) => run(() => api("DELETE", `/api/v1/auth/passkeys/${encodeURIComponent(passkey.id)}`));
	return (
		<section class="card wide" aria-labelledby="passkeys-title">
			<h2 id="passkeys-title">Passkeys</h2>
			<p class="hint">A passkey signs you in with your fingerprint, face or device PIN instead of the password, and counts as two-step login.</p>
			<ErrorBox error={error} />
			{added && <p role="status">Passkey "{added}" added; you can sign in with it now.</p>}
			<ul class="sessions">
				{passkeys?.map((p) => (
					<li key={p.id} data-testid="passkey">
						<strong>{p.name}</strong> {p.synced && <span class="badge">synced</span>}{p.disabled && <span class="badge">turned off: a copy of it was used; remove it and add the device again</span>}{" "}
						<span class="hint">added {when(p.createdAt)} · {p.lastUsedAt ? `last used ${when(p.lastUsedAt)}` : "not used yet"}</span>{" "}
						<button type="button" class="secondary" disabled={busy} aria-label={`Remove passkey ${p.name}`} onClick={() => void remove(p)}>Remove</button>
					</li>
				))}
			</ul>
			{passkeys?.length === 0 && <p>No passkeys yet.</p>}
			{usable() ? (
				<form onSubmit={add.onSubmit}>
					<ErrorBox error={add.error} />
					<Field label="Name of the passkey (optional)" name="passkeyName" value={name} onInput={setName} required={false} hint="e.g. MacBook, Phone, YubiKey" error={add.error} />
					<Field label="Password to add a passkey" id="f-passkey-password" name="password" type="password" autocomplete="current-password" value={password} onInput={setPassword} error={add.error} />
					{me.mfaEnabled && <Field label="Code from your app, or a recovery code" id="f-passkey-code" name="code" autocomplete="one-time-code" value={code} onInput={setCode} error={add.error} />}
					<button type="submit" disabled={add.busy}>Add a passkey</button>
				</form>
			) : (
				<PasskeysUnavailable />
			)}
		</section>
	);
}
