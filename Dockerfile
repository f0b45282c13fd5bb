# asyncrelay: TypeScript runs directly on Node 24 (type stripping), so there is no build stage.
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# The image already has Node 24, so the node@24 devDependency (and the rest of dev) is skipped.
RUN npm ci --omit=dev --no-audit --no-fund
COPY drizzle ./drizzle
COPY migrations ./migrations
COPY src ./src
COPY bin ./bin
USER node
EXPOSE 3000
# A 16 MB young generation: V8's default (64 MB semi-spaces) held ~100 MB more resident for no
# measurable throughput (README, "Memory").
ENTRYPOINT ["node", "--max-semi-space-size=16", "src/cli.ts"]
CMD ["serve"]
