package dnsproviders

import (
	"github.com/go-acme/lego/v5/challenge"

	"github.com/go-acme/lego/v5/providers/dns/acmedns"
	"github.com/go-acme/lego/v5/providers/dns/bunny"
	"github.com/go-acme/lego/v5/providers/dns/cloudflare"
	"github.com/go-acme/lego/v5/providers/dns/cloudns"
	"github.com/go-acme/lego/v5/providers/dns/digitalocean"
	"github.com/go-acme/lego/v5/providers/dns/dnsmadeeasy"
	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/go-acme/lego/v5/providers/dns/duckdns"
	"github.com/go-acme/lego/v5/providers/dns/exec"
	"github.com/go-acme/lego/v5/providers/dns/gandiv5"
	"github.com/go-acme/lego/v5/providers/dns/gcloud"
	"github.com/go-acme/lego/v5/providers/dns/godaddy"
	"github.com/go-acme/lego/v5/providers/dns/hetzner"
	"github.com/go-acme/lego/v5/providers/dns/httpreq"
	"github.com/go-acme/lego/v5/providers/dns/ibmcloud"
	"github.com/go-acme/lego/v5/providers/dns/infoblox"
	"github.com/go-acme/lego/v5/providers/dns/inwx"
	"github.com/go-acme/lego/v5/providers/dns/ionos"
	"github.com/go-acme/lego/v5/providers/dns/lightsail"
	"github.com/go-acme/lego/v5/providers/dns/namecheap"
	"github.com/go-acme/lego/v5/providers/dns/namesilo"
	"github.com/go-acme/lego/v5/providers/dns/netcup"
	"github.com/go-acme/lego/v5/providers/dns/ns1"
	"github.com/go-acme/lego/v5/providers/dns/ovh"
	"github.com/go-acme/lego/v5/providers/dns/pdns"
	"github.com/go-acme/lego/v5/providers/dns/porkbun"
	"github.com/go-acme/lego/v5/providers/dns/rackspace"
	"github.com/go-acme/lego/v5/providers/dns/route53"
	"github.com/go-acme/lego/v5/providers/dns/scaleway"
	"github.com/go-acme/lego/v5/providers/dns/technitium"
	"github.com/go-acme/lego/v5/providers/dns/transip"
	"github.com/go-acme/lego/v5/providers/dns/vultr"

	"certops.dev/certops/reconciler/issuer/acme/dnsproviders/azuredns"
)

// constructors are the lego DNS providers certops builds in. Each reads its
// configuration and credentials from its own environment variables (see
// lego's documentation of the provider); every variable X can instead be
// given as X_FILE, the path of a file holding the value.
//
// Chosen: the providers cert-manager ships in-tree (route53, Cloud DNS as
// gcloud, cloudflare, digitalocean, acme-dns, RFC 2136 as dnsupdate), exec
// and httpreq for anything else, and widely used providers whose SDKs
// build here, plus certops' own azuredns (lego's needs Azure SDK modules
// that cannot be fetched here). Left out because their SDK versions cannot
// be fetched here: edgedns (Akamai), linode, desec, dnsimple, designate,
// oraclecloud, alidns, tencentcloud, exoscale.
var constructors = map[string]func() (challenge.Provider, error){
	"route53":      func() (challenge.Provider, error) { return route53.NewDNSProvider() },
	"gcloud":       func() (challenge.Provider, error) { return gcloud.NewDNSProvider() },
	"cloudflare":   func() (challenge.Provider, error) { return cloudflare.NewDNSProvider() },
	"digitalocean": func() (challenge.Provider, error) { return digitalocean.NewDNSProvider() },
	"acmedns":      func() (challenge.Provider, error) { return acmedns.NewDNSProvider() },
	"dnsupdate":    func() (challenge.Provider, error) { return dnsupdate.NewDNSProvider() },
	"exec":         func() (challenge.Provider, error) { return exec.NewDNSProvider() },
	"httpreq":      func() (challenge.Provider, error) { return httpreq.NewDNSProvider() },
	"ovh":          func() (challenge.Provider, error) { return ovh.NewDNSProvider() },
	"hetzner":      func() (challenge.Provider, error) { return hetzner.NewDNSProvider() },
	"godaddy":      func() (challenge.Provider, error) { return godaddy.NewDNSProvider() },
	"namecheap":    func() (challenge.Provider, error) { return namecheap.NewDNSProvider() },
	"gandiv5":      func() (challenge.Provider, error) { return gandiv5.NewDNSProvider() },
	"porkbun":      func() (challenge.Provider, error) { return porkbun.NewDNSProvider() },
	"pdns":         func() (challenge.Provider, error) { return pdns.NewDNSProvider() },
	"ns1":          func() (challenge.Provider, error) { return ns1.NewDNSProvider() },
	"vultr":        func() (challenge.Provider, error) { return vultr.NewDNSProvider() },
	"scaleway":     func() (challenge.Provider, error) { return scaleway.NewDNSProvider() },
	"ionos":        func() (challenge.Provider, error) { return ionos.NewDNSProvider() },
	"infoblox":     func() (challenge.Provider, error) { return infoblox.NewDNSProvider() },
	"ibmcloud":     func() (challenge.Provider, error) { return ibmcloud.NewDNSProvider() },
	"cloudns":      func() (challenge.Provider, error) { return cloudns.NewDNSProvider() },
	"bunny":        func() (challenge.Provider, error) { return bunny.NewDNSProvider() },
	"netcup":       func() (challenge.Provider, error) { return netcup.NewDNSProvider() },
	"inwx":         func() (challenge.Provider, error) { return inwx.NewDNSProvider() },
	"transip":      func() (challenge.Provider, error) { return transip.NewDNSProvider() },
	"duckdns":      func() (challenge.Provider, error) { return duckdns.NewDNSProvider() },
	"lightsail":    func() (challenge.Provider, error) { return lightsail.NewDNSProvider() },
	"dnsmadeeasy":  func() (challenge.Provider, error) { return dnsmadeeasy.NewDNSProvider() },
	"namesilo":     func() (challenge.Provider, error) { return namesilo.NewDNSProvider() },
	"rackspace":    func() (challenge.Provider, error) { return rackspace.NewDNSProvider() },
	"technitium":   func() (challenge.Provider, error) { return technitium.NewDNSProvider() },
	"azuredns":     func() (challenge.Provider, error) { return azuredns.NewDNSProvider() },
}
