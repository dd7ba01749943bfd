package chain

// HeadMessage exposes headMessage to the external tests.
var HeadMessage = headMessage
