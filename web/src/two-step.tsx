/**
 * Two-step login: turning it on (password, then the secret for the authenticator app, then a
 * first code, then the recovery codes, shown this once) and off (password and a code).
 */
import { useState } from "preact/hooks";
import { api } from "./api.ts";
import type { Me } from "./api.ts";
import { ErrorBox, Field, useSubmit } from "./ui.tsx";

type Step = { name: "idle" } | { name: "secret"; secret: string; otpauthUrl: string } | { name: "codes"; recoveryCodes: string[] };

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
		setStep({ name: "codes", recoveryCodes: r.recoveryCodes });
		onChanged();
	});
	const disable = useSubmit(() => api("POST", "/api/v1/auth/mfa/totp/disable", { password, code }), () => {
		setPassword("");
		setCode("");
		onChanged();
	});
	return (
		<section class="card wide" aria-labelledby="two-step-title">
			<h2 id="two-step-title">Two-step login {me.mfaEnabled ? <span class="badge ok">on</span> : <span class="badge">off</span>}</h2>
			{step.name === "codes" ? (
				<div>
					<p role="status">Two-step login is on. Save these recovery codes somewhere safe: each signs you in once if you lose your phone, and they are not shown again.</p>
					<ul class="recovery-codes" data-testid="recovery-codes">
						{step.recoveryCodes.map((c) => <li key={c}><code>{c}</code></li>)}
					</ul>
					<button type="button" onClick={() => setStep({ name: "idle" })}>I have saved them</button>
				</div>
			) : step.name === "secret" ? (
				<form onSubmit={confirm.onSubmit}>
					<ErrorBox error={confirm.error} />
					<p>Add this key to your authenticator app (or open the <a href={step.otpauthUrl}>setup link</a> on your phone), then enter the code it shows.</p>
					<p><code data-testid="totp-secret">{step.secret}</code></p>
					<Field label="Code from the app" name="code" id="f-mfa-code" autocomplete="one-time-code" value={code} onInput={setCode} error={confirm.error} />
					<button type="submit" disabled={confirm.busy}>Confirm the code</button>
				</form>
			) : me.mfaEnabled ? (
				<form onSubmit={disable.onSubmit}>
					<ErrorBox error={disable.error} />
					<p>Signing in needs a code from your authenticator app as well as your password.</p>
					<Field label="Password to turn it off" name="password" id="f-mfa-password" type="password" autocomplete="current-password" value={password} onInput={setPassword} error={disable.error} />
					<Field label="Code from the app" name="code" id="f-mfa-code" autocomplete="one-time-code" value={code} onInput={setCode} error={disable.error} />
					<button type="submit" class="secondary" disabled={disable.busy}>Turn off two-step login</button>
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
