/**
 * Two-step login: turning it on (password, then the QR code and secret for the authenticator app,
 * then a first code, then the recovery codes, shown this once), and with the password and a code:
 * new recovery codes (shown this once; the old ones stop working), or turning it off.
 */
import { useRef, useState } from "preact/hooks";
import { api } from "./api.ts";
import type { Me } from "./api.ts";
import { QrCode } from "./qr-code.tsx";
import { ErrorBox, Field, useSubmit } from "./ui.tsx";

/** Below this many unused recovery codes, the card suggests making new ones. */
const FEW_RECOVERY_CODES = 3;

type Step = { name: "idle" } | { name: "secret"; secret: string; otpauthUrl: string } | { name: "codes"; recoveryCodes: string[]; renewed: boolean };

export function TwoStepLogin({ me, onChanged }: { me: Me; onChanged: () => void }) {
	const [step, setStep] = useState<Step>({ name: "idle" });
	const [password, setPassword] = useState("");
	const [code, setCode] = useState("");
	const start = useSubmit(() => api<{ secret: string; otpauthUrl: string }>("POST", "/api/v1/auth/mfa/totp", { password }), (r) => {
		setPassword("");
		setStep({ name: "secret", ...r });
	});
	const confirm = useSubmit(() => api<{ recoveryCodes: string[] }>("POST", "/api/v1/auth/mfa/totp/confirm", { code }), (r) => {
		setCode("");
		setStep({ name: "codes", recoveryCodes: r.recoveryCodes, renewed: false });
		onChanged();
	});
	// Both need the password and a code: one form, the button pressed picks the action (Enter
	// presses the first, which only makes new codes; the submit event's submitter is not everywhere).
	const intent = useRef<"renew" | "disable">("renew");
	const proven = () => {
		setPassword("");
		setCode("");
		onChanged();
	};
	// Six digits are a code from the app; anything else is taken for a recovery code.
	const factor = () => ({ password, ...(/^\s*\d{6}\s*$/.test(code) ? { code } : { recoveryCode: code }) });
	const disable = useSubmit(() => api("POST", "/api/v1/auth/mfa/totp/disable", factor()), proven);
	const renew = useSubmit(() => api<{ recoveryCodes: string[] }>("POST", "/api/v1/auth/mfa/recovery-codes", factor()), (r) => {
		proven();
		setStep({ name: "codes", recoveryCodes: r.recoveryCodes, renewed: true });
	});
	const bothFactorsError = disable.error ?? renew.error;
	return (
		<section class="card wide" aria-labelledby="two-step-title">
			<h2 id="two-step-title">Two-step login {me.mfaEnabled ? <span class="badge ok">on</span> : <span class="badge">off</span>}</h2>
			{step.name === "codes" ? (
				<div>
					<p role="status">{step.renewed ? "New recovery codes are ready; the old ones no longer work." : "Two-step login is on."} Save these recovery codes somewhere safe: each signs you in once if you lose your phone, and they are not shown again.</p>
					<ul class="recovery-codes" data-testid="recovery-codes">
						{step.recoveryCodes.map((c) => <li key={c}><code>{c}</code></li>)}
					</ul>
					<button type="button" onClick={() => setStep({ name: "idle" })}>I have saved them</button>
				</div>
			) : step.name === "secret" ? (
				<form onSubmit={confirm.onSubmit}>
					<ErrorBox error={confirm.error} />
					<p>Scan this code with your authenticator app, or type the key below into it (or open the <a href={step.otpauthUrl}>setup link</a> on your phone); then enter the code it shows.</p>
					<QrCode text={step.otpauthUrl} label="QR code for your authenticator app" />
					<p><code data-testid="totp-secret">{step.secret}</code></p>
					<Field label="Code from the app" name="code" id="f-mfa-code" autocomplete="one-time-code" value={code} onInput={setCode} error={confirm.error} />
					<button type="submit" disabled={confirm.busy}>Confirm the code</button>
				</form>
			) : me.mfaEnabled ? (
				<form onSubmit={(e) => (intent.current === "disable" ? disable : renew).onSubmit(e)}>
					<ErrorBox error={bothFactorsError} />
					<p>Signing in needs a code from your authenticator app as well as your password.</p>
					<p class={me.recoveryCodesLeft <= FEW_RECOVERY_CODES ? "warning" : undefined} data-testid="recovery-codes-left">
						{me.recoveryCodesLeft === 1 ? "1 recovery code is" : `${me.recoveryCodesLeft} recovery codes are`} left{me.recoveryCodesLeft <= FEW_RECOVERY_CODES ? ": make new ones before you run out." : "."}
					</p>
					<Field label="Password to change two-step login" name="password" id="f-mfa-password" type="password" autocomplete="current-password" value={password} onInput={setPassword} error={bothFactorsError} />
					<Field label="Code from the app, or a recovery code" name="code" id="f-mfa-code" autocomplete="one-time-code" value={code} onInput={setCode} error={bothFactorsError} />
					<div class="actions">
						<button type="submit" onClick={() => (intent.current = "renew")} disabled={renew.busy || disable.busy}>Make new recovery codes</button>
						<button type="submit" onClick={() => (intent.current = "disable")} class="secondary" disabled={renew.busy || disable.busy}>Turn off two-step login</button>
					</div>
				</form>
			) : (
				<form onSubmit={start.onSubmit}>
					<ErrorBox error={start.error} />
					<p>Ask for a code from an authenticator app (Google Authenticator, 1Password, Authy…) at every sign-in, so a stolen password is not enough.</p>
					<Field label="Password to turn it on" name="password" id="f-mfa-password" type="password" autocomplete="current-password" value={password} onInput={setPassword} error={start.error} />
					<button type="submit" class="secondary" disabled={start.busy}>Set up two-step login</button>
				</form>
			)}
		</section>
	);
}
