package sdk_test

import "github.com/edgelog/edgelog/event"

func eventPayload(v any) ([]byte, error) { return event.MarshalCBOR(v) }
