/**
 * The public REST surface, in one table. Billing and notification actions are reached through
 * moleculer-web auto-aliases (each action's `rest` under its service's `settings.rest`); auth is
 * reached over the gRPC bridge, so its routes are listed here with the rpc each one calls and the
 * edge policy that applies (who may call, which rate limit).
 */
export interface GrpcRoute {
	/** "METHOD path" relative to /api/v1 (or absolute when it starts with "/"). */
	route: string;
	rpc: string;
	/** The auth action behind the rpc: source of the params schema in the OpenAPI spec. */
	action: string;
	auth: "required" | "none";
	permissions?: string[];
	rateLimit?: string;
	/** Open to a session without a second factor under USERS_REQUIRE_MFA (lib/caller.ts RouteNeeds). */
	enrolment?: boolean | "always";
	successStatus?: number;
	/** The created resource's path, sent as `Location` with a 201. */
	location?: string;
	summary: string;
}

export const AUTH_ROUTES: GrpcRoute[] = [
	{ route: "POST auth/register", rpc: "Register", action: "auth.register", auth: "none", rateLimit: "auth-strict", successStatus: 201, location: "/api/v1/auth/me", summary: "Create an account" },
	{ route: "POST auth/login", rpc: "Login", action: "auth.login", auth: "none", rateLimit: "auth-strict", summary: "Log in with e-mail and password" },
	{ route: "POST auth/login/mfa", rpc: "CompleteMfaLogin", action: "auth.completeMfaLogin", auth: "none", rateLimit: "auth-strict", summary: "The second step of a login that answered 403 MFA_REQUIRED: its mfaToken and a code from the app (or a recovery code)" },
	{ route: "POST auth/mfa/totp", rpc: "StartTotp", action: "auth.startTotp", auth: "required", enrolment: true, rateLimit: "auth-strict", summary: "Begin turning on two-step login (needs the password): a TOTP secret and its otpauth:// link" },
	{ route: "POST auth/mfa/totp/confirm", rpc: "ConfirmTotp", action: "auth.confirmTotp", auth: "required", enrolment: true, rateLimit: "auth-strict", summary: "Turn two-step login on with a first code from the app; answers ten one-time recovery codes" },
	{ route: "POST auth/mfa/totp/disable", rpc: "DisableTotp", action: "auth.disableTotp", auth: "required", rateLimit: "auth-strict", successStatus: 204, summary: "Turn two-step login off (needs the password and a code, or a recovery code)" },
	{ route: "POST auth/mfa/recovery-codes", rpc: "RegenerateRecoveryCodes", action: "auth.regenerateRecoveryCodes", auth: "required", rateLimit: "auth-strict", summary: "Ten new recovery codes (needs the password and a code, or a recovery code); the old ones stop working" },
	{ route: "POST auth/passkeys/registration", rpc: "StartPasskeyRegistration", action: "auth.startPasskeyRegistration", auth: "required", enrolment: true, rateLimit: "auth-strict", summary: "Begin adding a passkey (needs the password, and a code or a recovery code when two-step login is on): the options for navigator.credentials.create() and the flowId to send back" },
	{ route: "POST auth/passkeys", rpc: "AddPasskey", action: "auth.addPasskey", auth: "required", enrolment: true, rateLimit: "auth-strict", successStatus: 201, location: "/api/v1/auth/passkeys", summary: "Add the passkey the browser made (its answer to the registration options); the user is told by e-mail" },
	{ route: "GET auth/passkeys", rpc: "ListPasskeys", action: "auth.listPasskeys", auth: "required", enrolment: "always", summary: "The caller's passkeys" },
	{ route: "DELETE auth/passkeys/:passkeyId", rpc: "RemovePasskey", action: "auth.removePasskey", auth: "required", enrolment: true, successStatus: 204, summary: "Remove one of the caller's passkeys; the user is told by e-mail" },
	{ route: "POST auth/login/passkey/options", rpc: "StartPasskeyLogin", action: "auth.startPasskeyLogin", auth: "none", rateLimit: "auth-strict", summary: "Begin signing in with a passkey: the options for navigator.credentials.get() and the flowId to send back" },
	{ route: "POST auth/login/passkey", rpc: "CompletePasskeyLogin", action: "auth.completePasskeyLogin", auth: "none", rateLimit: "auth-strict", summary: "Sign in with a passkey's answer to the login options: an access and a refresh token" },
	{ route: "POST auth/refresh", rpc: "Refresh", action: "auth.refresh", auth: "none", summary: "Exchange a refresh token for a new token pair" },
	{ route: "POST auth/logout", rpc: "Logout", action: "auth.logout", auth: "required", enrolment: "always", successStatus: 204, summary: "End this session, all sessions, or all but this one" },
	{ route: "POST auth/verify-email", rpc: "VerifyEmail", action: "auth.verifyEmail", auth: "none", successStatus: 204, summary: "Follow an e-mailed link: confirm the address, or move the account to the new address it was sent to" },
	{ route: "POST auth/verify-email/resend", rpc: "ResendVerification", action: "auth.resendVerification", auth: "required", enrolment: true, rateLimit: "auth-strict", successStatus: 202, summary: "Send the verification e-mail again" },
	{ route: "POST auth/password/forgot", rpc: "ForgotPassword", action: "auth.forgotPassword", auth: "none", rateLimit: "auth-strict", successStatus: 202, summary: "E-mail a password reset link" },
	{ route: "POST auth/password/reset", rpc: "ResetPassword", action: "auth.resetPassword", auth: "none", rateLimit: "auth-strict", successStatus: 204, summary: "Set a new password with a reset token" },
	{ route: "POST auth/password/change", rpc: "ChangePassword", action: "auth.changePassword", auth: "required", rateLimit: "auth-strict", successStatus: 204, summary: "Change the password (needs the current one)" },
	{ route: "DELETE auth/me", rpc: "DeleteAccount", action: "auth.deleteAccount", auth: "required", enrolment: true, rateLimit: "auth-strict", successStatus: 204, summary: "Delete the caller's account and their data everywhere" },
	{ route: "GET auth/me", rpc: "Me", action: "auth.me", auth: "required", enrolment: "always", summary: "The caller's account, roles and permissions" },
	{ route: "PATCH auth/me", rpc: "UpdateProfile", action: "auth.updateProfile", auth: "required", summary: "Change the caller's display name (empty: none)" },
	{ route: "POST auth/email/change", rpc: "RequestEmailChange", action: "auth.requestEmailChange", auth: "required", rateLimit: "auth-strict", successStatus: 202, summary: "E-mail a confirmation link to a new address (needs the password); the account moves there when the link is followed" },
	{ route: "GET auth/sessions", rpc: "ListSessions", action: "auth.sessions", auth: "required", summary: "The caller's live sessions (where the account is signed in), the current one marked" },
	{ route: "DELETE auth/sessions/:sessionId", rpc: "RevokeSession", action: "auth.revokeSession", auth: "required", successStatus: 204, summary: "End one of the caller's sessions, e.g. a device signed in elsewhere" },
	{ route: "PUT auth/users/:userId/roles", rpc: "SetUserRoles", action: "auth.setUserRoles", auth: "required", permissions: ["roles:write"], summary: "Replace a user's roles" },
	{ route: "GET auth/users", rpc: "ListUsers", action: "auth.listUsers", auth: "required", permissions: ["users:read"], summary: "Users by e-mail address (`query`: part of an address or an id), cursor pages" },
	{ route: "DELETE auth/users/:userId/sessions", rpc: "RevokeUserSessions", action: "auth.revokeUserSessions", auth: "required", permissions: ["users:write"], summary: "End every session of a user" },
	{ route: "DELETE auth/users/:userId/mfa", rpc: "ResetUserMfa", action: "auth.resetUserMfa", auth: "required", permissions: ["users:write"], successStatus: 204, summary: "Turn off a user's two-step login (for a user who lost the phone and the recovery codes; the user is told)" },
	{ route: "GET auth/roles", rpc: "ListRoles", action: "auth.listRoles", auth: "required", permissions: ["roles:read"], summary: "Every role with its permissions and how many users hold it" },
	{ route: "GET /.well-known/jwks.json", rpc: "GetJwks", action: "auth.jwks", auth: "none", summary: "Public keys that verify access tokens" },
];

/** Services whose published actions are auto-aliased under /api/v1. */
export const AUTO_ALIASED = ["billing", "notification"];

/** Local gateway action name for a gRPC route. */
export const proxyActionName = (r: GrpcRoute) => `grpc${r.rpc}`;
