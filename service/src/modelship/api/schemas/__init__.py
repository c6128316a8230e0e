"""The wire types of each protocol the service speaks: `native` (our JSON routes) and `v2`
(the Open Inference Protocol), as pydantic models that also make the OpenAPI document."""
