# Deliberately broken variants of the service image: the image checker must refuse each one.
ARG SERVICE_IMAGE=modelship

# The defect that shipped once: the environment built in /src/.venv and copied to /app/.venv,
# so the entry point's shebang names an interpreter that is not in the image.
FROM ${SERVICE_IMAGE} AS old-venv-path
USER root
RUN sed -i '1s|.*|#!/src/.venv/bin/python|' /app/.venv/bin/modelship
USER 10001:10001

FROM ${SERVICE_IMAGE} AS wrong-entrypoint
ENTRYPOINT ["modelship-server"]

FROM ${SERVICE_IMAGE} AS missing-model
USER root
RUN rm /app/model/model.onnx
USER 10001:10001
