/**
 * fastest-validator, the validator Moleculer uses for action params, also checks configuration
 * and event envelopes: one schema language everywhere.
 */
import FastestValidator from "fastest-validator";

// The package is CommonJS (`module.exports = Validator`) but its types declare a default export.
const Validator = FastestValidator as unknown as typeof FastestValidator.default;

export function createValidator(): InstanceType<typeof Validator> {
	return new Validator({ useNewCustomCheckerFunction: true });
}
