package cmdrun

import (
	"context"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Runner is a Command's state that can run one command and record its output (local: os/exec; remote: ssh).
type Runner[S any] interface {
	*S
	Run(ctx context.Context, cmd string) error
}

// Create is the create rule both Commands follow, as upstream: a new id; `create` runs, except in a preview or
// when it is unset.
func Create[S any, R Runner[S]](ctx context.Context, name string, dryRun bool, create *string, state S,
) (string, S, error) {
	id, err := resource.NewUniqueHex(name, 8, 0)
	if err != nil || dryRun || create == nil {
		return id, state, err
	}
	err = R(&state).Run(ctx, *create)
	return id, state, err
}

// Update runs `update`, or `create` when `update` is unset (the previous outputs are already in state); the
// outputs stay those of the last run in a preview or when neither is set.
func Update[S any, R Runner[S]](ctx context.Context, dryRun bool, update, create *string, state S) (S, error) {
	cmd := update
	if cmd == nil {
		cmd = create
	}
	if dryRun || cmd == nil {
		return state, nil
	}
	err := R(&state).Run(ctx, *cmd)
	return state, err
}

// Delete runs `delete`, if set, with the inputs and outputs recorded in the state.
func Delete[S any, R Runner[S]](ctx context.Context, del *string, state S) error {
	if del == nil {
		return nil
	}
	return R(&state).Run(ctx, *del)
}
