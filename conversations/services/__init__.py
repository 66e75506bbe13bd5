"""Writes for conversations, one module per concern:

- `contacts`: contacts by phone (blind index) and threads per contact and channel;
- `inbound`: storing provider deliveries and running the flow on them;
- `outbound`: storing and sending replies, delivery status;
- `privacy`: consent, export and erasure;
- `handoffs`: when a conversation waits for a human and when a human first answers;
- `stats`: the dashboard's and the stats API's numbers.
"""
