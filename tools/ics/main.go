// Command interchain-security-pd is the upstream Interchain Security provider
// daemon, built from its Go module for the project's test chain, with the SDK's
// x/authz added as on the Cosmos Hub (see authz.go).
package main

import (
	"fmt"
	"os"

	svrcmd "github.com/cosmos/cosmos-sdk/server/cmd"

	appparams "github.com/cosmos/interchain-security/v7/app/params"
	app "github.com/cosmos/interchain-security/v7/app/provider"
	"github.com/cosmos/interchain-security/v7/cmd/interchain-security-pd/cmd"
)

func main() {
	appparams.SetAddressPrefixes("cosmos")
	rootCmd := cmd.NewRootCmd()
	withAuthz(rootCmd)
	if err := svrcmd.Execute(rootCmd, "", app.DefaultNodeHome); err != nil {
		fmt.Fprintln(rootCmd.OutOrStderr(), err)
		os.Exit(1)
	}
}
