package main

// The reference provider app of Interchain Security has no x/authz module, but
// the provider chains validators run (the Cosmos Hub's gaiad) do, and operators
// publish their endpoint through an authz grantee key. This file adds the SDK's
// own x/authz to the provider app, the way gaiad wires it: its store, its Msg
// and Query services (gRPC), its types in the interface registry, and the
// `tx authz` commands. Nothing of the provider module changes.

import (
	"io"

	dbm "github.com/cosmos/cosmos-db"
	"github.com/spf13/cobra"

	"cosmossdk.io/log"
	storetypes "cosmossdk.io/store/types"

	"github.com/cosmos/cosmos-sdk/client"
	addresscodec "github.com/cosmos/cosmos-sdk/codec/address"
	"github.com/cosmos/cosmos-sdk/runtime"
	"github.com/cosmos/cosmos-sdk/server"
	servertypes "github.com/cosmos/cosmos-sdk/server/types"
	"github.com/cosmos/cosmos-sdk/x/authz"
	authzcli "github.com/cosmos/cosmos-sdk/x/authz/client/cli"
	authzkeeper "github.com/cosmos/cosmos-sdk/x/authz/keeper"
	"github.com/cosmos/cosmos-sdk/x/crisis"

	providerApp "github.com/cosmos/interchain-security/v7/app/provider"
)

// newAppWithAuthz builds the provider app with x/authz mounted and served, then
// loads the latest state (the upstream constructor is told not to load, so the
// authz store is mounted before the multistore is opened).
func newAppWithAuthz(
	logger log.Logger,
	db dbm.DB,
	traceStore io.Writer,
	appOpts servertypes.AppOptions,
) servertypes.Application {
	app := providerApp.New(logger, db, traceStore, false, appOpts, server.DefaultBaseappOptions(appOpts)...)

	authz.RegisterInterfaces(app.InterfaceRegistry())
	key := storetypes.NewKVStoreKey(authzkeeper.StoreKey)
	keeper := authzkeeper.NewKeeper(
		runtime.NewKVStoreService(key), app.AppCodec(), app.MsgServiceRouter(), app.AccountKeeper,
	)
	authz.RegisterMsgServer(app.MsgServiceRouter(), keeper)
	authz.RegisterQueryServer(app.GRPCQueryRouter(), keeper)
	app.MountStore(key, storetypes.StoreTypeIAVL)

	if err := app.LoadLatestVersion(); err != nil {
		panic("failed to load latest version: " + err.Error())
	}
	return app
}

// withAuthz replaces the root command's `start` with one that runs
// newAppWithAuthz, and adds the authz tx commands (grant, revoke, exec).
func withAuthz(rootCmd *cobra.Command) {
	for _, c := range rootCmd.Commands() {
		switch c.Name() {
		case "start":
			rootCmd.RemoveCommand(c)
			start := server.StartCmd(newAppWithAuthz, providerApp.DefaultNodeHome)
			crisis.AddModuleInitFlags(start)
			rootCmd.AddCommand(start)
		case "tx":
			c.AddCommand(authzcli.GetTxCmd(addresscodec.NewBech32Codec("cosmos")))
		}
	}
	// The client context's interface registry comes from a provider app built
	// inside NewRootCmd; teach it authz's types so the commands can encode and
	// print grants and MsgExec.
	upstream := rootCmd.PersistentPreRunE
	rootCmd.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if upstream != nil {
			if err := upstream(cmd, args); err != nil {
				return err
			}
		}
		if ctx := client.GetClientContextFromCmd(cmd); ctx.InterfaceRegistry != nil {
			authz.RegisterInterfaces(ctx.InterfaceRegistry)
		}
		return nil
	}
}
