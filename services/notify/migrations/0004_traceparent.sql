-- The W3C trace context of the decision that caused a delivery: the outgoing webhook carries
-- it on, so one report is one trace from the partner's request to the receiver.
ALTER TABLE deliveries ADD COLUMN traceparent text;
