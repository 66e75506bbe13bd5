"""Writes for conversations, and the message pipeline, one module per concern:

- `inbound`: storing provider deliveries (receive);
- `process`: the pipeline after that, under the thread row lock (`thread_lock`): consent
  keywords, the flows' decisions applied, replies stored; the flows' timers;
- `consent`: opt-in / opt-out, and the keywords a contact writes to change it;
- `outbound`: storing and sending replies, delivery status;
- `media`: downloading inbound media;
- `contacts`: contacts by phone (blind index) and threads per contact and channel;
- `threads`: staff changes to a thread;
- `privacy`: export and erasure;
- `handoffs`: when a conversation waits for a human and when a human first answers;
- `pending`: finishing what a crash or a broker outage left behind;
- `sandbox`: the sandbox provider's statuses;
- `stats`: the dashboard's and the stats API's numbers.
"""
