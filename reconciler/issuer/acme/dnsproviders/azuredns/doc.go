// Package azuredns is certops' own DNS-01 provider for Azure DNS (public
// zones), written against the Azure Resource Manager REST API because
// lego's azuredns provider needs Azure SDK modules that cannot be fetched
// here. It implements lego's challenge.Provider and
// challenge.ProviderTimeout and reads lego's environment variables
// (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_SUBSCRIPTION_ID, ...), each
// also readable from a file named by the same variable with a _FILE suffix.
//
// Authentication: client credentials (AZURE_AUTH_METHOD=env), workload
// identity (wli: the federated token in AZURE_FEDERATED_TOKEN_FILE, read
// again at every token request because it is rotated), and managed
// identity (msi: the instance metadata service). Access tokens are cached
// until five minutes before they expire.
//
// Record sets are read, merged and written with ETag preconditions, so the
// apex and wildcard challenges of one name coexist in one TXT record set;
// CleanUp removes only its own value and deletes the set when it is empty.
//
// Not supported: private DNS zones (AZURE_PRIVATE_ZONE), Azure CLI,
// pipeline and OIDC-request credentials of lego's provider, and service
// discovery of the zone's resource group.
//
// Errors name the zone, the record, the HTTP status and ARM's error code;
// they never contain the client secret, a federated token or an access
// token. Errors carry certops' retry classes: 429 is retry-after (ARM's
// Retry-After header, else one minute), 5xx and network failures are
// transient, other 4xx are permanent. The package does not log.
//
// A DNSProvider is safe for concurrent use.
package azuredns
