"""JSON Schemas shipped with roomc (package data): the room language, Sautikit actions, the route table."""
