# celery-gateway: HTTP gateway (`serve`) and Node worker (`worker`) in one image.
# The TypeScript sources run through tsx (a runtime dependency), so there is no build step.
FROM node:20-slim

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080

WORKDIR /app

COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY examples ./examples

USER node
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"

# `docker run IMAGE node bin/celery-gateway.js worker --tasks ./examples/tasks.ts` for a worker
CMD ["node", "bin/celery-gateway.js", "serve"]
