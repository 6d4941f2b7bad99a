"""The rules, over any store: who a message's contact is and which conversation it joins
(inbox, contacts, threads), what happens to the messages the business sends (outbox), and
who handles what (dispatch, waits, assignments, with routing's state). Every change is a
unit of work run by the store in one transaction (gateway.store.protocols); nothing here
knows which backend runs it."""
